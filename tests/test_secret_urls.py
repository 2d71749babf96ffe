"""Database URL passwords never reach output: every command, every error path, --debug, logs.

Issue 16: the state URL's password was printed by check-config, by the "cannot open the
state database" error of every command and by --debug tracebacks. The servers named here
listen on port 1 (nothing there), so every command that opens the state fails.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import structlog

from sync.service import logging as sync_logging
from sync.settings import mask, mask_url, register_url_password
from tests.test_cli import run, textwrap_config

PG = ("postgresql://stocksync:S3cr3t-pw@127.0.0.1:1/nope", "S3cr3t-pw")
MYSQL = ("mysql://u:An0ther-pw@127.0.0.1:1/nope", "An0ther-pw")
# `run` waits for an unreachable state server instead: tests/daemon/test_state_wait.py
COMMANDS = [("check-config",), ("status",), ("db", "verify"), ("once",)]


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "c.yaml"
    config.write_text(
        textwrap_config(f"""
        state: {{url: "{url}"}}
        pipelines:
          - name: main
            erp: {{type: k3cloud, server_url: "http://127.0.0.1:9/k3cloud/", acct_id: a,
                   username: u, app_id: "1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
                   app_secret: "app-secret-x", max_attempts: 1}}
            crm: {{type: fxiaoke, base_url: "http://127.0.0.1:9", app_id: x,
                   app_secret: "app-secret-y", permanent_code: "perm-code-z",
                   open_user_id: FSUID_1, max_attempts: 1}}
        """)
    )
    return config


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("url_password", [PG, MYSQL], ids=["postgresql", "mysql"])
def test_state_url_password_never_printed(
    tmp_path: Path, url_password: tuple[str, str], command: tuple[str, ...], debug: bool
) -> None:
    url, password = url_password
    config = _config(tmp_path, url)
    where = (str(config),) if command == ("check-config",) else ("-c", str(config))
    args = (*command, *where)
    result = run(*(("--debug",) if debug else ()), *args, timeout=60)
    shown = result.stdout + result.stderr
    assert password not in shown
    masked = url.replace(password, "***")  # scheme://user:***@127.0.0.1:1/nope
    assert masked in shown
    if command == ("check-config",):
        assert result.returncode == 0 and f"state: {masked}" in result.stdout
    else:
        assert "cannot open the state database" in result.stderr
        assert result.returncode == 2  # with or without --debug (issue 16, defect 4)
        assert ("Traceback" in result.stderr) is debug


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("command", [("status",), ("db", "verify"), ("db", "upgrade")])
def test_url_encoded_password_in_the_env_is_masked(
    tmp_path: Path, command: tuple[str, ...], debug: bool
) -> None:
    env = {"STOCKSYNC_STATE_URL": "postgresql://ops:p%40ss-W0rd@127.0.0.1:1/nope"}
    result = run(*(("--debug",) if debug else ()), *command, env=env, cwd=tmp_path, timeout=60)
    shown = result.stdout + result.stderr
    assert result.returncode == 2  # with or without --debug (issue 16, defect 4)
    for form in ("p%40ss-W0rd", "p@ss-W0rd", "ss-W0rd"):
        assert form not in shown
    assert "postgresql://ops:***@127.0.0.1:1/nope" in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot open 'postgresql+psycopg://a:pw@db:5432/s' now",
            "cannot open 'postgresql+psycopg://a:***@db:5432/s' now",
        ),
        ("mysql://u:p@ss@h/db failed", "mysql://u:***@h/db failed"),  # unencoded "@"
        ("dsn host=h user=u password=hunter22 dbname=d", "dsn host=h user=u password=*** dbname=d"),
        ("PASSWORD='a b' port=1", "PASSWORD=*** port=1"),
        ("postgresql://u:@h/db", "postgresql://u:@h/db"),  # empty password: nothing to hide
        ("sqlite:////var/lib/s.db", "sqlite:////var/lib/s.db"),
        ("http://127.0.0.1:9/k3cloud/ refused", "http://127.0.0.1:9/k3cloud/ refused"),
        ("postgresql://user@h:5432/db", "postgresql://user@h:5432/db"),
    ],
)
def test_mask_hides_url_and_dsn_passwords_only(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_mask_url_renders_with_sqlalchemy_and_falls_back() -> None:
    assert mask_url("mysql+pymysql://u:x%2Fy@h:3306/d") == "mysql+pymysql://u:***@h:3306/d"
    assert mask_url("not a url, u:pw@x://") == "not a url, u:pw@x://"
    assert mask_url("weird://u:pw-9@h/") == "weird://u:***@h/"


def test_registered_url_password_is_masked_wherever_it_appears() -> None:
    register_url_password("postgresql://u:Zq%2Bregistered-7@h/db")
    # a driver message quoting the decoded password outside any URL
    assert mask("auth failed for Zq+registered-7 and Zq%2Bregistered-7") == (
        "auth failed for *** and ***"
    )


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_logged_tracebacks_are_masked(fmt: str) -> None:
    stream = io.StringIO()
    sync_logging.configure("debug", fmt=fmt, stream=stream)  # type: ignore[arg-type]
    try:
        try:
            raise ConnectionError("connect to mysql://u:L0g-secret-pw@h:1/d refused")
        except ConnectionError:
            structlog.get_logger().exception("state_failed")
    finally:
        sync_logging.configure("info", fmt="json")
    text = stream.getvalue()
    assert "state_failed" in text and "Traceback" in text
    assert "L0g-secret-pw" not in text and "mysql://u:***@h:1/d" in text


def test_debug_traceback_masks_chained_causes(capsys: pytest.CaptureFixture[str]) -> None:
    from sync.cli.main import print_masked_traceback as _print_masked_traceback

    try:
        try:
            raise OSError("dsn postgresql://ops:Ch41ned-pw@h:1/d password=Ch41ned-pw")
        except OSError as cause:
            raise RuntimeError("state failed for mysql://u:Outer-pw-9@h/d") from cause
    except RuntimeError as exc:
        _print_masked_traceback(exc)
    err = capsys.readouterr().err
    assert "direct cause" in err and "RuntimeError" in err and "OSError" in err
    assert "Ch41ned-pw" not in err and "Outer-pw-9" not in err
    assert "postgresql://ops:***@h:1/d password=***" in err and "mysql://u:***@h/d" in err

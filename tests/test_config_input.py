"""Bad config input refused at load time with its exact path and line (issue 16, defect 5).

An unsupported state URL, bytes that are not UTF-8, a key written twice, a malformed
HTTP URL and a repeated pipeline name all passed ``check-config`` or gave a raw
exception or the wrong line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sync.config import load, parse
from sync.errors import ConfigError

BASE = """\
pipelines:
  - name: main
    erp: {type: memory}
    crm: {type: memory-crm}
"""
SUPPORTED = "supported: sqlite, postgresql, mysql/mariadb"


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str, int | None]]:
    with pytest.raises(ConfigError) as info:
        parse(textwrap.dedent(text), env=env or {})
    return [(p.path, p.message, p.line) for p in info.value.problems]


# -- a: the state URL names a backend stocksync runs on --------------------------------

BAD_STATE_URLS = [
    (
        "oracle://scott:Tiger-99x@db/x",
        f"unsupported database 'oracle' in 'oracle://scott:***@db/x'; {SUPPORTED}",
    ),
    (
        "postgres+foo://ops:Tiger-99x@db/x",
        f"unsupported database 'postgres' in 'postgres+foo://ops:***@db/x'; {SUPPORTED} "
        "(write postgresql://)",
    ),
    ("nonsense", f"not a database URL: 'nonsense'; {SUPPORTED} (e.g. sqlite:///stocksync.db)"),
    # our own cases: a driver SQLAlchemy has no dialect for, and Heroku's postgres://
    (
        "postgresql+nosuch://ops:Tiger-99x@db/x",
        "unknown driver 'nosuch' for postgresql in 'postgresql+nosuch://ops:***@db/x'",
    ),
    (
        "postgres://db/x",
        f"unsupported database 'postgres' in 'postgres://db/x'; {SUPPORTED} (write postgresql://)",
    ),
]


@pytest.mark.parametrize(("url", "message"), BAD_STATE_URLS)
def test_an_unsupported_state_url_is_refused_at_its_line(url: str, message: str) -> None:
    text = "log: {level: info}\nstate:\n  url: '" + url + "'\n" + BASE
    assert problems(text) == [("state.url", message, 3)]


@pytest.mark.parametrize(("url", "message"), BAD_STATE_URLS)
def test_an_unsupported_state_url_in_the_env_names_the_variable(url: str, message: str) -> None:
    found = problems(BASE, env={"STOCKSYNC_STATE_URL": url})
    assert found == [("STOCKSYNC_STATE_URL", message, None)]
    assert "Tiger-99x" not in str(found)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///state.db",
        "sqlite://",
        "sqlite:///file:state.db?mode=ro&uri=true",
        "postgresql://u:p@h:5432/db",
        "postgresql+psycopg://u@h/db",
        "mysql://u@h/db",
        "mariadb+pymysql://u@h/db",
    ],
)
def test_a_supported_state_url_loads(url: str) -> None:
    assert parse("state: {url: '" + url + "'}\n" + BASE, env={}).state.url == url


# -- b: a config file is UTF-8 -----------------------------------------------------------


def _load_problem(path: Path) -> tuple[str, str, int | None, str | None]:
    with pytest.raises(ConfigError) as info:
        load(path)
    [problem] = info.value.problems
    return problem.path, problem.message, problem.line, info.value.source


def test_a_latin1_byte_names_the_file_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"pipelines:\n  - name: m\xe9\n")  # "mé" saved as Latin-1
    assert _load_problem(path) == (
        "(file)",
        f"byte 0xe9 at offset 22 (column 12) is not UTF-8: save {path} as UTF-8",
        2,
        str(path),
    )


def test_a_utf16_file_is_refused_at_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(("# stock\n" + BASE).encode("utf-16"))  # starts with the BOM ff fe
    assert _load_problem(path)[:3] == (
        "(file)",
        f"byte 0xff at offset 0 (column 1) is not UTF-8: save {path} as UTF-8",
        1,
    )


def test_a_bad_byte_in_a_comment_is_found_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(BASE.encode() + "# Lager Süd\n".encode("cp1252"))
    assert _load_problem(path)[2] == 5


# -- c: a key written twice is refused, not silently overwritten -------------------------

TWICE = """\
pipelines:
  - name: main
    erp: {type: memory}
    crm:
      type: fxiaoke
      base_url: https://open.fxiaoke.com
      app_id: x
      app_secret: secret-1
      permanent_code: code-1
      open_user_id: FSUID_1
      base_url: https://open-na.sharecrm.com
"""


def test_a_repeated_key_names_the_second_and_the_first_line() -> None:
    assert problems(TWICE) == [("pipelines[0].crm.base_url", "duplicate key, first at line 6", 11)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("log: {level: info}\n" + BASE + "log: {level: debug}\n", ("log", 1, 6)),
        (  # in a flow mapping, on one line
            BASE.replace("{type: memory}", "{type: memory, type: memory}"),
            ("pipelines[0].erp.type", 3, 3),
        ),
        (
            BASE + "    push:\n      batch_size: 5\n      batch_size: 6\n",
            ("pipelines[0].push.batch_size", 6, 7),
        ),
    ],
)
def test_every_repeated_key_is_refused(text: str, expected: tuple[str, int, int]) -> None:
    path, first, line = expected
    assert (path, f"duplicate key, first at line {first}", line) in problems(text)


def test_a_merge_key_override_is_not_a_repeat_and_lines_still_track() -> None:
    text = (
        "x-schedule: &s {interval_s: 60, misfire_grace_s: 30}\n"
        + BASE
        + "    schedule:\n      <<: *s\n      interval_s: 0\n"
    )
    assert problems(text) == [
        ("x-schedule", "unknown key", 1),
        ("pipelines[0].schedule.interval_s", "input should be greater than or equal to 1", 8),
    ]


# -- d: every base URL is an http(s) URL with a host -------------------------------------

FXIAOKE = (
    "    crm: {{type: fxiaoke, base_url: '{url}', app_id: x, app_secret: secret-1,\n"
    "          permanent_code: code-1, open_user_id: FSUID_1}}\n"
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("htp:/x", "'htp:/x' must start with http:// or https://"),
        ("http//host", "'http//host' must start with http:// or https://"),
        ("http://", "'http://' has no host (write http://host or https://host)"),
        ("http:/x", "'http:/x' has no host (write http://host or https://host)"),
        ("http://open fxiaoke.com", "'http://open fxiaoke.com' is not a URL: it contains a blank"),
        (
            "https://h:port/",
            "'https://h:port/' is not a URL (Port could not be cast to integer value as 'port')",
        ),
    ],
)
def test_a_malformed_base_url_is_refused_at_load(url: str, message: str) -> None:
    text = BASE.replace("    crm: {type: memory-crm}\n", "") + FXIAOKE.format(url=url)
    assert problems(text) == [("pipelines[0].crm.base_url", message, 4)]


@pytest.mark.parametrize(
    ("section", "path", "url"),
    [
        (
            "    erp: {type: k3cloud, server_url: 'http//erp/k3cloud/', acct_id: a, username: u,\n"
            "          app_id: i, app_secret: ssssssss}\n",
            "pipelines[0].erp.server_url",
            "http//erp/k3cloud/",
        ),
        (
            "    erp: {type: tryton, url: 'http//erp:8000', database: d, username: u,\n"
            "          password: pppppppp}\n",
            "pipelines[0].erp.url",
            "http//erp:8000",
        ),
    ],
)
def test_every_http_url_setting_is_checked(section: str, path: str, url: str) -> None:
    text = "pipelines:\n  - name: main\n    crm: {type: memory-crm}\n" + section
    assert problems(text) == [(path, f"{url!r} must start with http:// or https://", 4)]


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.com/services/T0/SeCrEtToKeN",
        "http//hooks/SeCrEtToKeN",
        "https:///SeCrEtToKeN",
    ],
)
def test_a_bad_webhook_url_is_refused_without_showing_its_token(url: str) -> None:
    """A webhook URL carries its token in the path: the error names the setting, not the URL."""
    text = "pipelines:\n  - name: main\n    crm: {type: memory-crm}\n    erp: {type: memory}\n"
    text += f"    alerts: {{webhook: {{url: '{url}'}}}}\n"
    assert problems(text) == [
        (
            "pipelines[0].alerts.webhook.url",
            "is not an http:// or https:// URL with a host (not shown: it may hold a token)",
            5,
        )
    ]


# -- e: a repeated pipeline name points at the second name ------------------------------


def test_a_repeated_pipeline_name_points_at_the_second_name() -> None:
    text = BASE + "  - name: other\n    erp: {type: memory}\n    crm: {type: memory-crm}\n"
    text += "  - erp: {type: memory}\n    crm: {type: memory-crm}\n    name: main\n"
    assert problems(text) == [
        (
            "pipelines[2].name",
            "pipeline name 'main' is already used by pipelines[0] (line 2); names must be unique",
            10,
        )
    ]


# -- issue 16 defect 6: reading the state needs no connector secret -----------------------


def test_without_connectors_missing_secrets_do_not_fail() -> None:
    text = (
        "pipelines:\n  - name: main\n    erp: {type: memory}\n"
        "    crm: {type: fxiaoke, app_id: x, app_secret: '${FX_SECRET}',\n"
        "          permanent_code: '${FX_CODE}', open_user_id: FSUID_1}\n"
        "    alerts: {default_threshold: 5, webhook: {url: '${HOOK_URL}'}}\n"
    )
    settings = parse(text, env={}, with_connectors=False)
    p = settings.pipelines[0]
    assert (p.name, p.crm, p.alerts.webhook, p.alerts.default_threshold) == ("main", None, None, 5)
    with pytest.raises(ConfigError) as info:
        parse(text, env={})
    assert [(p.path, p.message, p.line) for p in info.value.problems] == [
        ("pipelines[0].crm.app_secret", "environment variable FX_SECRET is not set", 4),
        ("pipelines[0].crm.permanent_code", "environment variable FX_CODE is not set", 5),
        ("pipelines[0].alerts.webhook.url", "environment variable HOOK_URL is not set", 6),
    ]


def test_without_connectors_the_state_url_variable_is_still_needed() -> None:
    with pytest.raises(ConfigError) as info:
        parse("state: {url: '${STATE_DB}'}\n" + BASE, env={}, with_connectors=False)
    assert [(p.path, p.message, p.line) for p in info.value.problems] == [
        ("state.url", "environment variable STATE_DB is not set", 1)
    ]

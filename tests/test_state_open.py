"""Opening the state database from the CLI (issue 16, defects 6 and 7).

- Commands that only read the state need no connector secret.
- A state URL with a typo never creates an empty database for them: exit 2, saying so.
- The daemon refuses to start on a database that refuses writes, instead of failing
  every cycle for ever.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import structlog
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from sync.state import StateStore
from tests.conftest import server_url
from tests.test_cli import run

READS = [
    ("status",),
    ("conflicts", "list"),
    ("conflicts", "show", "1"),
    ("report",),
    ("db", "verify"),
    ("alerts", "list"),
    ("explain", "A@W1"),
]
#: connector secrets and the alert webhook come from variables these tests never set
CONFIG = """\
state: {url: "sqlite:///STATE"}
pipelines:
  - name: main
    erp: {type: k3cloud, server_url: "http://127.0.0.1:9/k3cloud/", acct_id: a,
          username: u, app_id: "1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
          app_secret: "${K3_SECRET}"}
    crm: {type: fxiaoke, base_url: "http://127.0.0.1:9", app_id: x,
          app_secret: "${FX_SECRET}", permanent_code: "${FX_CODE}", open_user_id: FSUID_1}
    alerts: {default_threshold: 3, webhook: {url: "${HOOK_URL}"}}
"""
_runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``stocksync ARGS`` in-process (a subprocess costs ~2 s): (exit code, stdout, stderr)."""
    from sync.cli.main import app

    unset = {
        name: None
        for name in ("STOCKSYNC_STATE_URL", "STOCKSYNC_CONFIG", "K3_SECRET", "FX_SECRET", "FX_CODE")
    }
    result = _runner.invoke(app, list(args), env={**unset, **(env or {})})
    structlog.reset_defaults()  # the command pointed structlog at the runner's streams
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("STATE", str(tmp_path / "state.db")))
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.upgrade()
    store.close()
    return path


# -- defect 6: reading needs only the state -----------------------------------------------


@pytest.mark.parametrize("command", READS, ids="-".join)
def test_a_read_needs_no_connector_secret(config: Path, command: tuple[str, ...]) -> None:
    code, stdout, stderr = cli(*command, "-c", str(config))
    if command[:2] == ("conflicts", "show"):  # it read the state: there is no conflict 1
        assert (code, stderr.strip().splitlines()[0]) == (2, "error: no conflict with id 1")
        return
    if command[0] == "explain":  # it read the state: the key has no level there
        assert code == 2 and "A@W1 is unknown in main" in stderr, stderr
        return
    assert code == 0, stderr
    assert "not set" not in stdout + stderr


@pytest.mark.parametrize("command", [("check-config",), ("once",), ("reconcile",)])
def test_commands_that_talk_to_the_systems_still_need_the_secrets(
    config: Path, command: tuple[str, ...]
) -> None:
    where = (str(config),) if command == ("check-config",) else ("-c", str(config))
    code, stdout, stderr = cli(*command, *where)
    assert code == 2
    shown = stdout + stderr
    assert (
        "pipelines[0].erp.app_secret (line 6): environment variable K3_SECRET is not set" in shown
    )
    assert "pipelines[0].crm.permanent_code (line 8): environment variable FX_CODE is not set" in (
        shown
    )
    assert (
        "pipelines[0].alerts.webhook.url (line 9): environment variable HOOK_URL is not set"
        in shown
    )


def test_run_still_needs_the_secrets(config: Path) -> None:
    result = run("run", "-c", str(config), timeout=60)
    assert result.returncode == 2
    assert "pipelines[0].crm.app_secret (line 8): environment variable FX_SECRET is not set" in (
        result.stderr
    )


# -- defect 6: a typo in the state URL is not a new empty database ------------------------


@pytest.mark.parametrize("command", READS, ids="-".join)
def test_a_read_refuses_a_sqlite_file_that_does_not_exist(
    tmp_path: Path, config: Path, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"STOCKSYNC_STATE_URL": "sqlite:///stat.db"}  # state.db, mistyped
    code, _, stderr = cli(*command, "-c", str(config), env=env)
    assert code == 2
    assert stderr.splitlines() == [
        f"error: the state database {tmp_path / 'stat.db'} does not exist",
        "hint: check the path in STOCKSYNC_STATE_URL or state.url; `stocksync db upgrade` "
        "(or `stocksync run`) creates it",
    ]
    assert not (tmp_path / "stat.db").exists()


def test_a_missing_folder_is_not_created_by_a_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'state.db'}"
    code, _, stderr = cli("status", env={"STOCKSYNC_STATE_URL": url})
    assert code == 2 and "does not exist" in stderr
    assert not (tmp_path / "no").exists()
    code, stdout, _ = cli("db", "upgrade", env={"STOCKSYNC_STATE_URL": url})
    assert code == 0 and "state database at revision" in stdout
    assert (tmp_path / "no" / "such" / "state.db").exists()


def _renamed(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("env", "what"),
    [("STOCKSYNC_TEST_PG_URL", "PostgreSQL"), ("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL")],
)
def test_a_read_refuses_a_server_database_that_does_not_exist(env: str, what: str) -> None:
    server_url(env, what)  # skips (fails under CI) when the server is not there
    import os

    url = _renamed(os.environ[env], f"stocksync_typo_{uuid.uuid4().hex[:8]}")
    shown = make_url(url).render_as_string(hide_password=True)
    for command in (("status",), ("db", "verify"), ("db", "upgrade")):
        code, _, stderr = cli(*command, env={"STOCKSYNC_STATE_URL": url})
        assert code == 2
        assert stderr.splitlines()[0] == (
            f"error: the state database '{shown}' does not exist on its server"
        ), command


def test_a_read_refuses_a_postgresql_schema_without_stocksync_tables() -> None:
    url = server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL")
    empty = make_url(url).update_query_dict(
        {"options": f"-csearch_path=stocksync_none_{uuid.uuid4().hex[:8]}"}
    )
    text = empty.render_as_string(hide_password=False)
    code, _, stderr = cli("status", env={"STOCKSYNC_STATE_URL": text})
    assert code == 2
    assert stderr.splitlines()[0] == (
        f"error: the state database '{empty.render_as_string(hide_password=True)}' "
        "has no stocksync tables"
    )


# -- defect 7: the daemon refuses a database that refuses writes --------------------------

DAEMON_CONFIG = """\
metrics: null
pipelines:
  - name: main
    erp: {type: memory}
    crm: {type: memory-crm}
"""
HINT = (
    "hint: give the user stocksync runs as write access (file and folder permissions for "
    "SQLite, GRANT and no read-only mode on a server), or point STOCKSYNC_STATE_URL or "
    "state.url at a writable database"
)


def _daemon(tmp_path: Path, url: str) -> list[str]:
    config = tmp_path / "d.yaml"
    config.write_text(DAEMON_CONFIG)
    result = run("run", "-c", str(config), env={"STOCKSYNC_STATE_URL": url}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "cycle_failed" not in result.stdout + result.stderr
    return result.stderr.splitlines()[-2:]


def test_the_daemon_refuses_a_read_only_sqlite_file(tmp_path: Path) -> None:
    # mode=ro refuses writes even to root, who ignores a chmod 0444
    path = tmp_path / "state.db"
    StateStore(f"sqlite:///{path}").upgrade()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    shown = make_url(url).render_as_string(hide_password=True)
    assert _daemon(tmp_path, url) == [
        f"error: the state database '{shown}' refuses writes "
        "(attempt to write a readonly database)",
        HINT,
    ]
    assert not (tmp_path / "file:").exists()  # the daemon lock sits next to the file itself
    assert (tmp_path / "state.db.lock").exists()


def test_the_daemon_refuses_a_read_only_postgresql_session(tmp_path: Path) -> None:
    url = make_url(server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL"))  # migrated schema
    options = url.query["options"] + " -cdefault_transaction_read_only=on"
    read_only = url.update_query_dict({"options": options})
    text = read_only.render_as_string(hide_password=False)
    assert _daemon(tmp_path, text) == [
        f"error: the state database '{read_only.render_as_string(hide_password=True)}' "
        "refuses writes (cannot execute UPDATE in a read-only transaction)",
        HINT,
    ]


def test_the_daemon_refuses_a_read_only_mariadb_session_with_a_migration_pending(
    tmp_path: Path,
) -> None:
    """MariaDB says "read only" as an OperationalError (1792): refused, never waited for."""
    from sqlalchemy import create_engine, text

    url = make_url(server_url("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL"))
    name = f"ss_ro_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(drivername="mysql+pymysql"))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        fresh = url.set(database=name).update_query_dict(
            {"init_command": "SET SESSION TRANSACTION READ ONLY"}
        )
        lines = _daemon(tmp_path, fresh.render_as_string(hide_password=False))
        assert lines[0].startswith(
            f"error: the state database '{fresh.render_as_string(hide_password=True)}' "
            "refuses writes ((1792, 'Cannot execute statement in a READ ONLY transaction"
        )
        assert lines[1] == HINT
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        admin.dispose()


def test_the_daemon_refuses_a_sqlite_path_it_cannot_open(tmp_path: Path) -> None:
    """A folder where the file should be does not come up later: exit 2, no waiting."""
    folder = tmp_path / "state.db"
    folder.mkdir()
    lines = _daemon(tmp_path, f"sqlite:///{folder}")
    assert lines == [
        f"error: cannot open the state database 'sqlite:///{folder}': unable to open database file",
        "hint: check the path in state.url (or STOCKSYNC_STATE_URL) and that this user may read "
        "and write the file and its folder",
    ]


def test_a_writable_database_passes_the_probe_and_keeps_no_trace(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    before = store.upgrade()
    store.check_writable()
    assert store.revision() == before
    store.close()

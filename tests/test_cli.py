"""`stocksync` as a user runs it: a subprocess, exit codes, no tracebacks, no secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from sync import config as cfg
from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page
from sync.service.locks import Locks
from sync.state import StateStore

ROOT = Path(__file__).resolve().parents[1]
SECRET = "S3cr3t-VALUE-never-shown-1234"
UNREACHABLE = "postgresql://u@127.0.0.1:1/x"  # nothing listens on port 1
STUCK_AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def run(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    unset: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    gone = set(unset)
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_") and k not in gone
    }
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


def test_help_and_version() -> None:
    help_ = run("--help")
    assert help_.returncode == 0 and "check-config" in help_.stdout and "Exit codes" in help_.stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("stocksync ")


#: what a user sets to validate config.example.yaml (the README's production section lists them)
EXAMPLE_ENV = {
    "K3CLOUD_URL": "http://127.0.0.1:8765/k3cloud/",
    "K3CLOUD_ACCT_ID": "65f0000000000a",
    "K3CLOUD_USER": "apiuser",
    "K3CLOUD_APP_ID": "123456_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
    "K3CLOUD_APP_SECRET": "0123456789abcdef0123456789abcdef",
    "FXIAOKE_APP_ID": "FSAID_131f5c8",
    "FXIAOKE_APP_SECRET": SECRET,
    "FXIAOKE_PERMANENT_CODE": "A1B2C3D4E5F6",
    "FXIAOKE_OPEN_USER_ID": "FSUID_00000000000000000000000000000001",
}


def _required_variables(text: str) -> set[str]:
    """``${VAR}`` without a default on the lines that are not comments."""
    live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", live))


def test_example_config_validates_with_its_variables_set() -> None:
    result = run("check-config", "config.example.yaml", env=EXAMPLE_ENV)
    assert result.returncode == 0, result.stderr
    assert "pipeline main (enabled): k3cloud → fxiaoke" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_example_config_without_its_variables_names_each_one() -> None:
    """No dummy fallback for a credential: a variable left unset stops check-config."""
    needed = _required_variables((ROOT / "config.example.yaml").read_text())
    assert needed == set(EXAMPLE_ENV)
    env = {name: value for name, value in EXAMPLE_ENV.items() if name != "FXIAOKE_APP_SECRET"}
    one_missing = run("check-config", "config.example.yaml", env=env, unset=EXAMPLE_ENV)
    assert one_missing.returncode == 2, one_missing.stdout
    assert one_missing.stderr.count("is not set") == 1
    assert "crm.app_secret (line " in one_missing.stderr
    assert "environment variable FXIAOKE_APP_SECRET is not set" in one_missing.stderr
    none_set = run("check-config", "config.example.yaml", unset=EXAMPLE_ENV)
    assert none_set.returncode == 2
    for name in EXAMPLE_ENV:
        assert f"environment variable {name} is not set" in none_set.stderr
    # the unset variable is the problem, not the empty value it left behind
    assert "at least" not in none_set.stderr
    readme = (ROOT / "README.md").read_text()
    assert [name for name in sorted(needed) if f"`{name}`" not in readme] == []


def _keys(node: object, prefix: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(f"{prefix}{key}")
            found |= _keys(value, f"{prefix}{key}.")
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        found |= _keys(node[0], prefix)
    return found


def _fields(model: type, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    out: set[str] = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        out.add(f"{prefix}{name}")
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out |= _fields(candidate, f"{prefix}{name}.")
    return out


def test_example_config_documents_every_option() -> None:
    from connectors.fxiaoke.sink import FxiaokeSettings
    from connectors.k3cloud.settings import K3CloudSettings

    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    present = _keys(example)
    expected = {f for f in _fields(cfg.SettingsBase) if not f.startswith("pipelines")}
    expected |= {f"pipelines.{f}" for f in _fields(cfg.PipelineBase)}
    expected |= {f"pipelines.erp.{f}" for f in _fields(K3CloudSettings)}
    expected |= {f"pipelines.crm.{f}" for f in _fields(FxiaokeSettings)}
    # webhook is null in the example; its fields are described in the comment next to it
    expected = {f for f in expected if not f.startswith("pipelines.alerts.webhook.")}
    assert sorted(expected - present) == []


def test_status_on_an_empty_state_db_needs_only_the_env(tmp_path: Path) -> None:
    env = {"STOCKSYNC_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    assert run("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = run("status", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no pipeline has run yet" in result.stdout
    as_json = run("status", "--format", "json", env=env, cwd=tmp_path)
    data = json.loads(as_json.stdout)
    assert data["pipelines"] == [] and data["revision"] == "0009" and data["outbox"] == {}


def test_status_shows_levels_a_crashed_pull_left_unqueued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    store.upgrade()
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    lines = [
        Movement(f"memory:d:{n}:1", MovementKind.RECEIPT, sku, "W1", Decimal(2), at, at)
        for n, sku in enumerate(["A", "B", "A"])
    ]
    apply_page(store, "main", Page("s", lines, None), now=at)  # and then the process died
    store.close()
    env = {"STOCKSYNC_STATE_URL": url}
    data = json.loads(run("status", "--format", "json", env=env, cwd=tmp_path).stdout)
    assert data["levels_waiting"] == {"main": 2} and data["outbox"] == {}
    text = run("status", env={**env, "COLUMNS": "200"}, cwd=tmp_path).stdout
    assert "levels waiting" in text


def test_missing_config_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    result = run("once", cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_secrets_never_reach_errors_or_logs(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        textwrap_config(f"""
        state: {{url: "sqlite:///{tmp_path / "s.db"}"}}
        pipelines:
          - name: main
            erp: {{type: k3cloud, server_url: "http://127.0.0.1:9/k3cloud/", acct_id: a,
                   username: u, app_id: "1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
                   app_secret: "${{K3_SECRET}}", max_attempts: 1}}
            crm: {{type: fxiaoke, base_url: "http://127.0.0.1:9", app_id: x,
                   app_secret: "${{K3_SECRET}}", permanent_code: "{SECRET}",
                   open_user_id: FSUID_1, max_attempts: 1}}
            schedule: {{interval_s: 0}}
        """)
    )
    env = {"K3_SECRET": SECRET}
    invalid = run("check-config", str(config), env=env)
    assert invalid.returncode == 2 and "interval_s" in invalid.stderr + invalid.stdout
    config.write_text(config.read_text().replace("schedule: {interval_s: 0}", ""))
    connect = run("check-config", str(config), "--connect", env=env)
    failed_cycle = run("--debug", "once", "-c", str(config), env=env)
    for result in (invalid, connect, failed_cycle):
        assert SECRET not in result.stdout + result.stderr
    assert connect.returncode == 1 and "FAILED" in connect.stdout
    assert failed_cycle.returncode != 0


def textwrap_config(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).lstrip()


def test_db_upgrade_creates_a_fresh_file_that_db_verify_reads(tmp_path: Path) -> None:
    env = {"STOCKSYNC_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    verify_before = run("db", "verify", env=env, cwd=tmp_path)
    assert verify_before.returncode == 2 and "does not exist" in verify_before.stderr
    assert not (tmp_path / "state.db").exists()  # a read never creates the database
    upgrade = run("db", "upgrade", env=env, cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    verify = run("db", "verify", env=env, cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr


def test_db_verify_reports_a_tampered_level(tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from sync.ledger import apply_page
    from sync.model import Movement, MovementKind, Page
    from sync.state import StateStore

    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    store.upgrade()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    apply_page(
        store,
        "main",
        Page("s", [Movement("m:1", MovementKind.RECEIPT, "A", "W", Decimal(3), at, at)], None),
        now=at,
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE stock_levels SET qty = qty + 1")
    store.close()
    result = run("db", "verify", env={"STOCKSYNC_STATE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert "level differences" in result.stdout and "3.000001" in result.stdout


def _state_with_stuck_rows(url: str) -> None:
    """Pipeline "main": A@W1 dead (the CRM rejected it), B@W1 pushed, C@W1 blocked."""
    from connectors.memory.sink import MemoryCrm
    from sync.push import Pusher

    store = StateStore(url)
    store.upgrade()
    at = STUCK_AT
    lines = [
        Movement(f"memory:d:{n}:1", MovementKind.RECEIPT, sku, "W1", Decimal(2), at, at)
        for n, sku in enumerate(["A", "B", "C"])
    ]
    apply_page(store, "main", Page("s", lines, None), now=at)
    crm = MemoryCrm(skus={"A", "B"})
    crm.faults.append(("create_level", "reject"))
    report = Pusher(store, crm, "main", now=lambda: at).run()
    assert (report.pushed, report.dead, report.blocked) == (1, 1, 1)
    store.close()


def test_status_lists_dead_and_blocked_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    _state_with_stuck_rows(url)
    env = {"STOCKSYNC_STATE_URL": url, "COLUMNS": "250"}
    data = json.loads(run("status", "--format", "json", env=env, cwd=tmp_path).stdout)
    stuck = {r["key"]: r for r in data["stuck"]}
    assert set(stuck) == {"A@W1", "C@W1"}
    dead, blocked = stuck["A@W1"], stuck["C@W1"]
    assert (dead["state"], dead["attempts"], dead["pipeline"]) == ("dead", 1, "main")
    assert dead["last_error"] == "memory CRM: create_level rejected (injected)"
    assert (blocked["state"], blocked["attempts"]) == ("blocked", 0)
    assert blocked["last_error"] == "CRM has no product 'C'"
    assert data["outbox"]["main"]["dead"] == 1 and data["outbox"]["main"]["blocked"] == 1

    csv_out = run("status", "--format", "csv", env=env, cwd=tmp_path)
    lines = csv_out.stdout.splitlines()
    assert csv_out.returncode == 0
    assert lines[0] == "pipeline,id,state,target,key,attempts,last_error"
    error = "memory CRM: create_level rejected (injected)"
    assert lines[1] == f"main,{dead['id']},dead,level,A@W1,1,{error}"
    assert lines[2].startswith(f"main,{blocked['id']},blocked,level,C@W1,0,")

    # both rows hold changes seen at 08:00 that the CRM lacks: freshness counts from then
    fresh = data["freshness"]["main"]
    assert (fresh["since"], fresh["cause"]) == ("2026-03-01T08:00:00+00:00", "outbox")
    assert fresh["freshness_s"] >= (datetime.now(UTC) - STUCK_AT).total_seconds() - 60

    table = run("status", env=env, cwd=tmp_path)
    assert table.returncode == 0
    assert "dead and blocked rows" in table.stdout and "stocksync retry" in table.stdout
    assert "main: freshness " in table.stdout and "before 2026-03-01T08:00:00+00:00" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "A@W1" in line)
    assert str(dead["id"]) in row and "rejected (injected)" in row

    # a blocked row or an unknown id is not a dead row: said, and nothing is requeued
    for ids in ([str(blocked["id"])], [str(dead["id"]), "9999"]):
        refused = run("retry", *ids, env=env, cwd=tmp_path)
        assert refused.returncode == 2, refused
        assert f"no dead outbox row with id {ids[-1]}" in refused.stdout + refused.stderr
    data = json.loads(run("status", "--format", "json", env=env, cwd=tmp_path).stdout)
    assert {r["key"] for r in data["stuck"]} == {"A@W1", "C@W1"}

    retried = run("retry", str(dead["id"]), env=env, cwd=tmp_path)
    assert retried.returncode == 0 and "requeued 1 dead row(s)" in retried.stdout
    data = json.loads(run("status", "--format", "json", env=env, cwd=tmp_path).stdout)
    assert [r["key"] for r in data["stuck"]] == ["C@W1"]


def test_status_csv_without_stuck_rows_prints_the_header(tmp_path: Path) -> None:
    StateStore(f"sqlite:///{tmp_path / 'state.db'}").upgrade()
    env = {"STOCKSYNC_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    result = run("status", "--format", "csv", env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["pipeline,id,state,target,key,attempts,last_error"]


@pytest.mark.parametrize(
    "command",
    [("status",), ("reconcile",), ("conflicts", "list"), ("alerts", "list"), ("db", "verify")],
)
def test_an_unknown_format_is_an_error_not_a_table(tmp_path: Path, command: tuple[str]) -> None:
    env = {"STOCKSYNC_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    result = run(*command, "--format", "yaml", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown format 'yaml'" in result.stderr and "table, json" in result.stderr
    assert result.stdout == ""


def _config_with_state(path: Path, state_url: str, interval_s: int = 60) -> Path:
    path.write_text(
        textwrap_config(f"""
        state: {{url: "{state_url}"}}
        pipelines:
          - name: main
            erp: {{type: k3cloud, server_url: "http://127.0.0.1:9/k3cloud/", acct_id: a,
                   username: u, app_id: "1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
                   app_secret: s, max_attempts: 1}}
            crm: {{type: fxiaoke, base_url: "http://127.0.0.1:9", app_id: x,
                   app_secret: s, permanent_code: p, open_user_id: FSUID_1, max_attempts: 1}}
            schedule: {{interval_s: {interval_s}}}
        """)
    )
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("invalid config", "interval_s"),  # ConfigError
        ("unreachable state database", "cannot open the state database"),  # a runtime failure
        ("daemon holds the SQLite file", "daemon is running"),  # a StockSyncError
    ],
)
def test_debug_adds_a_traceback_but_never_changes_the_exit_code(
    tmp_path: Path, case: str, expected: str
) -> None:
    db = tmp_path / "state.db"
    if case == "invalid config":
        args = ("check-config", str(_config_with_state(tmp_path / "c.yaml", f"sqlite:///{db}", 0)))
    elif case == "unreachable state database":
        args = ("status", "-c", str(_config_with_state(tmp_path / "c.yaml", UNREACHABLE)))
    else:
        args = ("once", "-c", str(_config_with_state(tmp_path / "c.yaml", f"sqlite:///{db}")))
    held = StateStore(f"sqlite:///{db}")
    daemon = Locks(held.engine)
    daemon.acquire_daemon()  # only the third case reaches the lock
    try:
        plain, debug = run(*args, cwd=tmp_path), run("--debug", *args, cwd=tmp_path)
    finally:
        daemon.release_daemon()
        held.close()
    assert plain.returncode == debug.returncode == 2, (plain.stderr, debug.stderr)
    assert expected in plain.stderr and expected in debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert "Traceback" not in plain.stderr


@pytest.mark.parametrize("value", ["1e400", "1e35", ".nan", ".inf"])
def test_check_config_refuses_an_interval_out_of_bounds(tmp_path: Path, value: str) -> None:
    """Issue 16: the value once passed check-config and made `run` die with OverflowError."""
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        "pipelines:\n"
        "  - name: main\n"
        f"    schedule: {{interval_s: {value}}}\n"
        "    erp: {type: memory}\n"
        "    crm: {type: memory-crm}\n",
        encoding="utf-8",
    )
    result = run("check-config", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "pipelines[0].schedule.interval_s (line 3): input should be" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("csv", [False, True], ids=["rich", "csv"])
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path: Path, csv: bool) -> None:
    """``stocksync status | head -2``: no "error: BrokenPipeError", no traceback; 141 as a
    shell shows a command stopped by SIGPIPE (rich's output and our CSV writer alike)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    args: tuple[str, ...] = ("config-schema",)
    if csv:
        StateStore(f"sqlite:///{tmp_path / 'state.db'}").upgrade()
        env["STOCKSYNC_STATE_URL"] = f"sqlite:///{tmp_path / 'state.db'}"
        args = ("alerts", "list", "--format", "csv")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has started: its first write finds no reader
    err = proc.stderr.read().decode()
    assert (proc.wait(timeout=60), err) == (141, "")

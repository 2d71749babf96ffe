"""The README's "Connect your own systems", followed step by step against the emulators.

Everything a user would take from that section is taken from it here: the commands (every
``stocksync …`` line of its shell blocks, in order), the config (its YAML block, written as
``stocksync.yaml``) and the environment variables (its table: each variable from the key
of the emulator's JSON line). If the README drifts from what works, this test fails.
The emulators run as the README starts them, as subprocesses; only the oracle (what the
K/3 Cloud demo scenario holds) is built in process.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.k3cloud.emulator import build_emulator as build_erp
from sync import config as cfg
from sync.runtime import build_pipeline, open_store

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Connect your own systems\n"
#: the steps after the emulators, in the README's order; `run` is the daemon (not run here)
STEPS = [
    "stocksync check-config --connect",
    "stocksync db upgrade",
    "stocksync once",
    "stocksync reconcile",
    "stocksync run",
]
#: which emulator's JSON line a variable is read from, by its prefix
EMULATOR_OF = {"K3CLOUD_": "k3cloud", "FXIAOKE_": "fxiaoke"}


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, "README.md lost its 'Connect your own systems' section"
    section = text.split(HEADING, 1)[1]
    return section.split("\n## ", 1)[0]


def code_blocks(section: str, lang: str) -> list[str]:
    """The fenced blocks of one language, dedented (they sit inside a numbered list)."""
    pattern = re.compile(rf"^( *)```{lang}\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
    return [textwrap.dedent(m.group(2)) for m in pattern.finditer(section)]


def commands(section: str) -> list[str]:
    lines = (
        line.split("#", 1)[0].strip() for b in code_blocks(section, "sh") for line in b.split("\n")
    )
    return [line for line in lines if line]


def variables(section: str) -> dict[str, str]:
    """The table's variable → the emulator JSON key it is copied from."""
    row = re.compile(r"^\s*\| `([A-Z0-9_]+)` \|.*\| `([a-z_]+)` \|\s*$", re.MULTILINE)
    return dict(row.findall(section))


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    """The user's shell: none of the test run's STOCKSYNC_* or connection variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKSYNC_", *EMULATOR_OF))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def stocksync(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "stocksync", command
    return [sys.executable, "-m", "sync", *argv[1:]]


@contextmanager
def emulators(starts: list[str], timeout_s: float = 30.0) -> Iterator[list[dict[str, Any]]]:
    """Start each ``stocksync emulator …`` as the README does (all at once); yield their JSON
    lines in order; stop them."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for command in starts:
            procs.append(
                subprocess.Popen(
                    stocksync(command),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    env=cli_env({}),
                )
            )
        lines = []
        for command, proc in zip(starts, procs, strict=True):
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
            assert ready, f"{command}: no JSON line within {timeout_s}s"
            lines.append(json.loads(proc.stdout.readline()))
        yield lines
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_step(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stocksync(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_production_path_against_the_emulators(tmp_path: Path) -> None:
    section = readme_section()
    steps = commands(section)
    starts = [c for c in steps if c.startswith("stocksync emulator ")]
    assert starts == [
        "stocksync emulator k3cloud --scenario demo",
        "stocksync emulator fxiaoke --scenario demo",
    ]
    assert [c for c in steps if c not in starts] == STEPS
    (config,) = code_blocks(section, "yaml")
    (tmp_path / "stocksync.yaml").write_text(config, encoding="utf-8")
    table = variables(section)
    assert len(table) == 10 and {v[: v.index("_") + 1] for v in table} == set(EMULATOR_OF)

    with emulators(starts) as (erp_info, crm_info):
        info = {"k3cloud": erp_info, "fxiaoke": crm_info}
        exports = {
            var: str(info[EMULATOR_OF[var[: var.index("_") + 1]]][key])
            for var, key in table.items()
        }
        env = cli_env(exports)
        for command in STEPS[:-1]:
            done = run_step(command, tmp_path, env)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            for secret in ("K3CLOUD_APP_SECRET", "FXIAOKE_APP_SECRET", "FXIAOKE_PERMANENT_CODE"):
                assert exports[secret] not in done.stdout + done.stderr, (command, secret)
            if command == "stocksync once":
                assert "blocked 0" in done.stdout and "dead 0" in done.stdout, done.stdout
        assert "0 difference(s)" in done.stdout, done.stdout
        crm = crm_levels(tmp_path, env)

    # the oracle: the same scenario, seeded in process
    erp = build_erp("demo")
    on_hand = {k: Decimal(v) for k, v in erp.inventory().items() if v}
    reserved = {k: Decimal(v) for k, v in erp.reserved().items()}
    assert reserved == {("1.01.002", "CK001"): Decimal(15)}
    assert {k: real for k, (real, _, _) in crm.items()} == on_hand
    for key, (real, available, blocked) in crm.items():
        assert blocked == reserved.get(key, 0), key
        assert available == real - blocked, key
    real, available, blocked = crm["1.01.002", "CK001"]
    assert (blocked, available) == (15, real - 15) and real > 15


def crm_levels(
    folder: Path, env: dict[str, str]
) -> dict[tuple[str, str], tuple[Decimal, Decimal | None, Decimal | None]]:
    """What the CRM emulator holds, read over its API with the config the user wrote."""
    # the README's state URL is relative to the folder stocksync ran in
    state = {"STOCKSYNC_STATE_URL": f"sqlite:///{folder / 'stocksync.db'}"}
    settings = cfg.parse((folder / "stocksync.yaml").read_text(), env={**env, **state})
    pipeline = build_pipeline(settings.pipelines[0], open_store(settings, upgrade=False))
    try:
        return {
            (r.sku, r.warehouse): (r.qty, r.available, r.reserved)
            for r in pipeline.sink.read_levels()
        }
    finally:
        pipeline.close()

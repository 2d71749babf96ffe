"""Packaging: the database drivers are extras, a missing one is named; the pins match pyproject."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

# Runs the CLI with the named top-level modules unimportable, as if not installed.
BLOCKED_RUN = """
import sys
blocked = set(sys.argv[1].split(","))

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
sys.argv = ["stocksync", *sys.argv[2:]]
from sync.cli.main import main
main()
"""


def run_without(
    modules: str, *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_")}
    full_env.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, modules, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "driver", "message"),
    [
        (
            "postgresql://sync:Pw-9f3k@127.0.0.1:1/stock",
            "psycopg",
            "state.url uses PostgreSQL but the driver is not installed: "
            "pip install 'stocksync[postgresql]'",
        ),
        (
            "mysql://sync:Pw-9f3k@127.0.0.1:1/stock",
            "pymysql",
            "state.url uses MySQL/MariaDB but the driver is not installed: "
            "pip install 'stocksync[mysql]'",
        ),
        (
            "mariadb://sync:Pw-9f3k@127.0.0.1:1/stock",
            "pymysql",
            "pip install 'stocksync[mysql]'",
        ),
    ],
)
def test_a_missing_driver_names_the_extra(
    tmp_path: Path, url: str, driver: str, message: str
) -> None:
    result = run_without(driver, "status", env={"STOCKSYNC_STATE_URL": url}, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "Pw-9f3k" not in result.stdout + result.stderr


def test_the_daemon_refuses_to_start_without_the_driver(tmp_path: Path) -> None:
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        "state: {url: 'postgresql://sync@127.0.0.1:1/stock'}\n"
        "metrics: null\n"
        "pipelines:\n"
        "  - name: main\n"
        "    erp: {type: memory}\n"
        "    crm: {type: memory-crm}\n",
        encoding="utf-8",
    )
    result = run_without("psycopg", "run", "-c", str(config), env={}, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install 'stocksync[postgresql]'" in result.stderr, result.stderr


def test_sqlite_needs_neither_driver(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    result = run_without(
        "psycopg,pymysql", "db", "upgrade", env={"STOCKSYNC_STATE_URL": url}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "state database at revision" in result.stdout


def test_the_test_extra_installs_both_drivers() -> None:
    """CI installs .[dev] (hence .[test]) and runs the PostgreSQL and MariaDB tests."""
    test = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["test"]]
    extras = {e for r in test if r.name == "stocksync" for e in r.extras}
    assert {"postgresql", "mysql"} <= extras
    drivers = {
        canonicalize_name(Requirement(r).name)
        for extra in ("postgresql", "mysql")
        for r in PYPROJECT["optional-dependencies"][extra]
    }
    assert drivers == {"psycopg", "pymysql"}
    runtime = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert not drivers & runtime


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency_within_pyproject() -> None:
    """The Docker image installs with -c constraints.txt: a pin pyproject refuses, or a
    dependency without a pin, would make that build fail or float."""
    pins = _pins()
    required = PYPROJECT["dependencies"] + [
        r for extra in ("postgresql", "mysql") for r in PYPROJECT["optional-dependencies"][extra]
    ]
    for text in required:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt has no pin for {requirement.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, "
            f"pyproject.toml asks {requirement.specifier}"
        )
    assert "psycopg-binary" in pins  # psycopg[binary]: the image has no libpq


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for folder in ("sync", "connectors"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(a.name.partition(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.partition(".")[0])
    return names


def test_every_runtime_dependency_is_imported() -> None:
    """A dependency nothing imports (starlette, uvicorn once) only costs installs and CVEs."""
    distributions: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            distributions.setdefault(canonicalize_name(dist), set()).add(module)
    imported = _imported_top_levels()
    for text in PYPROJECT["dependencies"]:
        name = canonicalize_name(Requirement(text).name)
        assert distributions.get(name, set()) & imported, f"nothing imports {name}"


def test_the_docker_base_image_is_pinned_by_digest() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    [base] = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    assert "-c constraints.txt" in dockerfile

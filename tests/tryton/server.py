"""A real Tryton server for tests: database template, start/stop, proteus session.

Reusable outside this package (the end-to-end tests use it too). Nothing is
installed here: trytond, trytond-stock, trytond-purchase, trytond-sale and
proteus must already be importable.

- The initialised SQLite database (``trytond-admin -u stock purchase sale`` plus
  ``scenario.base_setup``: a company, a second warehouse, parties and products)
  is built once and cached under ``$STOCKSYNC_TEST_CACHE`` (default
  ``~/.cache/stocksync-tests``), keyed by every installed trytond module's
  version and ``TEMPLATE_REVISION``; each session works on a copy.
- The server runs on a free loopback port with ``TZ=UTC`` and is ready only when
  it answered a real JSON-RPC call, so a foreign program on the port cannot pass
  for it.
- The documents themselves are in ``tests.tryton.scenario`` (proteus, Tryton's
  own client, over XML-RPC, so the test process never imports the server pool).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.tryton import scenario

MODULES = ("stock", "purchase", "sale")
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "admin-test-pass"
DATABASE = "erp"
#: bump when base_setup() changes, so cached templates are rebuilt
TEMPLATE_REVISION = "2"

_BOOT = "import sys; from trytond.cli{mod} import main; sys.argv[0] = {name!r}; sys.exit(main())"


def _boot(script: str) -> list[str]:
    """Run trytond's console script with this interpreter (no PATH or venv layout assumed)."""
    mod = ".admin" if script == "trytond-admin" else ""
    return [sys.executable, "-c", _BOOT.format(mod=mod, name=script)]


def trytond_missing() -> str | None:
    """Why a Tryton server cannot run here, or None when it can."""
    for module in ("trytond", *(f"trytond.modules.{m}" for m in MODULES), "proteus"):
        try:
            __import__(module)
        except ImportError as exc:
            return f"{module} is not importable ({exc}); install the 'test' extra"
    return None


def template_key() -> str:
    """Cache key: installed versions of everything that shapes the database file."""
    parts = [TEMPLATE_REVISION, sys.version.split()[0], ",".join(MODULES)]
    # every trytond module installed (activated ones and their dependencies alike)
    versions = {
        _normalise(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if _normalise(dist.metadata["Name"] or "").startswith(("trytond", "proteus"))
    }
    parts.extend(f"{name}={version}" for name, version in sorted(versions.items()))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def cache_dir() -> Path:
    root = os.environ.get("STOCKSYNC_TEST_CACHE") or Path.home() / ".cache" / "stocksync-tests"
    return Path(root) / "tryton"


@dataclass
class TrytonServer:
    """A running trytond serving one SQLite database on loopback."""

    url: str
    database: str
    username: str
    password: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        """The database's RPC endpoint (JSON-RPC and proteus' XML-RPC alike)."""
        return f"{self.url}/{self.database}/rpc/"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Raw TrytonSettings values for this server (validate with the connector's model)."""
        values: dict[str, Any] = {
            "type": "tryton",
            "url": self.url,
            "database": self.database,
            "username": self.username,
            "password": self.password,
            "timeout_s": 10.0,
            "max_attempts": 2,
        }
        values.update(overrides)
        return values


# -- files and processes ----------------------------------------------------------------


def write_config(workdir: Path) -> Path:
    """trytond.conf for SQLite files under ``workdir/db`` (no inline comments: ConfigParser)."""
    (workdir / "db").mkdir(parents=True, exist_ok=True)
    conf = workdir / "trytond.conf"
    conf.write_text(
        "[database]\nuri = sqlite://\n"
        f"path = {workdir / 'db'}\nlist = True\n"
        "[session]\ntimeout = 3600\nmax_attempt = 100\n"
    )
    return conf


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYTOND_")}
    env.update(TZ="UTC", PYTHONUNBUFFERED="1", **extra)
    return env


def db_file(workdir: Path, database: str = DATABASE) -> Path:
    return workdir / "db" / f"{database}.sqlite"


def init_database(workdir: Path, database: str = DATABASE) -> None:
    """Create the database with trytond-admin (-u MODULES, dependencies, admin e-mail)."""
    conf = write_config(workdir)
    target = db_file(workdir, database)
    target.touch()  # trytond's SQLite backend refuses a missing file
    passfile = workdir / "passfile"
    passfile.write_text(ADMIN_PASSWORD + "\n")
    cmd = [
        *_boot("trytond-admin"),
        "-c",
        str(conf),
        "-d",
        database,
        "-u",
        *MODULES,
        "--activate-dependencies",
        "--email",
        "admin@example.invalid",
    ]
    log = workdir / "admin.log"
    with log.open("wb") as out:
        done = subprocess.run(
            cmd, env=_env(TRYTONPASSFILE=str(passfile)), stdout=out, stderr=out, timeout=300
        )
    if done.returncode != 0:
        raise RuntimeError(f"trytond-admin failed ({done.returncode}):\n{log.read_text()[-3000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc(url: str, method: str, params: list[Any], auth: str | None = None) -> Any:
    """One plain JSON-RPC call (urllib); returns the envelope's result or raises RuntimeError."""
    body = json.dumps({"id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if answer.get("error"):
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer.get("result")


def start_server(
    workdir: Path, database: str = DATABASE, *, timeout_s: float = 60.0
) -> TrytonServer:
    """Start trytond on a free loopback port and wait for a real JSON-RPC answer."""
    conf = write_config(workdir)
    for _attempt in range(3):
        port = _free_port()
        log = (workdir / "server.log").open("ab")
        process = subprocess.Popen(
            [*_boot("trytond"), "-c", str(conf), "-d", database],
            env=_env(TRYTOND_WEB__LISTEN=f"127.0.0.1:{port}"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = TrytonServer(
            f"http://127.0.0.1:{port}", database, ADMIN_LOGIN, ADMIN_PASSWORD, workdir, process
        )
        if _wait_ready(server, timeout_s):
            return server
        stop_server(server)  # port taken by someone else, or a crash: try another port
    tail = (workdir / "server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"trytond did not start:\n{tail}")


def _wait_ready(server: TrytonServer, timeout_s: float) -> bool:
    assert server.process is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            if rpc(f"{server.url}/rpc/", "common.server.version", []):
                return True
        time.sleep(0.2)
    return False


def stop_server(server: TrytonServer, *, timeout_s: float = 20.0) -> None:
    """SIGTERM and wait (trytond takes a few seconds); SIGKILL if it will not go."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_server(workdir: Path, database: str = DATABASE) -> Iterator[TrytonServer]:
    server = start_server(workdir, database)
    try:
        yield server
    finally:
        stop_server(server)


def copy_database(src: Path, dst: Path) -> None:
    """Copy a SQLite file consistently (WAL included) and drop stale -wal/-shm at ``dst``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(src)) as source,
        contextlib.closing(sqlite3.connect(dst)) as target,
    ):
        source.backup(target)


def ensure_template() -> Path:
    """The cached, fully initialised database file; built (≈15–25 s) when missing."""
    cached = cache_dir() / f"{DATABASE}-{template_key()}.sqlite"
    if cached.exists():
        return cached
    with tempfile.TemporaryDirectory(prefix="stocksync-tryton-build-") as tmp:
        workdir = Path(tmp)
        init_database(workdir)
        with running_server(workdir) as server, proteus_session(server) as config:
            scenario.base_setup(config, ADMIN_LOGIN)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        copy_database(db_file(workdir), partial)
        partial.replace(cached)
    return cached


def prepare_workdir(workdir: Path) -> Path:
    """A fresh copy of the template database in ``workdir`` (config written too)."""
    write_config(workdir)
    target = db_file(workdir)
    copy_database(ensure_template(), target)
    return target


# -- proteus ------------------------------------------------------------------------------


@contextlib.contextmanager
def proteus_session(server: TrytonServer) -> Iterator[Any]:
    """A proteus XML-RPC config logged in as admin (passed explicitly, never global)."""
    from proteus.config import XmlrpcConfig

    uid, token, _ = rpc(
        server.rpc_url, "common.db.login", [server.username, {"password": server.password}, "en"]
    )
    raw = f"{server.username}:{uid}:{token}".encode()
    auth = "Session " + base64.b64encode(raw).decode("ascii")
    config = XmlrpcConfig(server.rpc_url, headers=[("Authorization", auth)])
    try:
        yield config
    finally:
        with contextlib.suppress(Exception):
            config.server.common.db.logout()

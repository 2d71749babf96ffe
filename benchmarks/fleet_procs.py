"""What the fleet scenario drives: a fresh PostgreSQL database, daemon processes, a
connection sampler. The daemons are ``python -m sync run -c CONFIG`` subprocesses; their
JSON log lines go to a file each."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.common import ROOT, child_env

#: this benchmark's own connections to the fleet's database carry this name; the sampler
#: leaves them out
BENCH_APP = "stocksync-bench"


def with_app_name(url: str, name: str) -> str:
    """``url`` with ``application_name`` set: ``pg_stat_activity`` then tells who is who."""
    parsed = make_url(url).update_query_dict({"application_name": name})
    return parsed.render_as_string(hide_password=False)


def _psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def fresh_database(server_url: str) -> Iterator[tuple[str, str]]:
    """A new, empty database on ``server_url``'s PostgreSQL server: yields (url, name).

    Dropped afterwards (``WITH (FORCE)``: a killed daemon's backends may linger).
    """
    name = f"stocksync_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_psycopg(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False), name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def write_config(
    path: Path,
    pipelines: list[dict[str, Any]],
    *,
    state_url: str,
    heartbeat_s: float,
    lease_timeout_s: float,
) -> Path:
    """A daemon config: JSON logs at info, /healthz and /metrics on a free port (not
    scraped), default workers."""
    doc: dict[str, Any] = {
        "state": {"url": state_url},
        "log": {"level": "info", "format": "json"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "shutdown_grace_s": 20,
        "replicas": {"heartbeat_s": heartbeat_s, "lease_timeout_s": lease_timeout_s},
        "pipelines": pipelines,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


class Daemon:
    """One ``python -m sync run -c CONFIG`` process; its log lines in ``log_path``."""

    def __init__(self, label: str, config: Path, log_path: Path) -> None:
        self.label = label
        self.log_path = log_path
        self.replica = ""
        self.killed_at: Any = None  # datetime of the SIGKILL
        env = child_env()
        env.pop("STOCKSYNC_STATE_URL", None)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sync", "run", "-c", str(config)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def wait_started(self, timeout_s: float) -> str:
        """This daemon's replica id, once it logged ``daemon_started``.

        Raises ``RuntimeError`` when it exits first or takes longer than ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == "daemon_started":
                    self.replica = str(event["replica"])
                    return self.replica
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon {self.label} exited {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError(f"daemon {self.label} did not start within {timeout_s:g} s")

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("level") in ("error", "critical")]

    def warnings(self) -> Counter[str]:
        """How many warning-level events of each name this daemon logged."""
        return Counter(str(e.get("event")) for e in self.events() if e.get("level") == "warning")

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then the exit status (SIGKILL after ``timeout_s``: status -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@dataclass
class Sample:
    at: float  # time.monotonic()
    per_app: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.per_app.values())


@dataclass
class ConnectionSampler:
    """Counts the fleet's backends in ``pg_stat_activity`` every ``every_s`` from a thread,
    by ``application_name`` (one per replica), through a connection to another database
    (so it is not counted itself); this benchmark's own connections are left out."""

    server_url: str
    database: str
    every_s: float = 0.2
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ConnectionSampler:
        self._engine = create_engine(_psycopg(self.server_url), pool_size=1)
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._engine.dispose()

    def _run(self) -> None:
        query = text(
            "SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity "
            "WHERE datname = :db AND coalesce(application_name, '') <> :me GROUP BY 1"
        )
        with self._engine.connect() as conn:
            while not self._stop.is_set():
                rows = conn.execute(query, {"db": self.database, "me": BENCH_APP}).all()
                conn.rollback()
                self.samples.append(Sample(time.monotonic(), {a: int(n) for a, n in rows}))
                self._stop.wait(self.every_s)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]


def connection_figures(samples: list[Sample], apps: list[str]) -> dict[str, Any]:
    """Peak and median (steady) of the total and of each application's connections."""
    if not samples:
        return {"samples": 0}
    totals = [s.total for s in samples]
    return {
        "samples": len(samples),
        "peak": max(totals),
        "median": statistics.median(totals),
        "per_replica_peak": {a: max(s.per_app.get(a, 0) for s in samples) for a in apps},
        "per_replica_median": {
            a: statistics.median(s.per_app.get(a, 0) for s in samples) for a in apps
        },
    }

"""40 jobs at once in one daemon on a server database: no pool wait, /healthz keeps answering.

Issue 17, fault 1: each running job used to hold a pooled connection for its advisory
lock, so 16 busy jobs emptied the 5 + 10 pool and /healthz waited behind them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from connectors.memory.source import MemoryErp
from sync.service.daemon import Daemon
from sync.service.locks import lock_key, lock_name
from tests.conftest import server_url
from tests.daemon.conftest import wait_until, write_config

JOBS = 40
SERVERS = {
    "postgresql": ("STOCKSYNC_TEST_PG_URL", "PostgreSQL"),
    "mysql": ("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL"),
}


class HealthPoller:
    """Polls /healthz over real HTTP from its own thread, timing every answer."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.answers: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._done.is_set():
                started = time.monotonic()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.answers.append((time.monotonic() - started, status))
                self._done.wait(0.05)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(15)


def _lock_holders(daemon: Daemon, names: list[str]) -> list[int]:
    """The server session holding each pipeline's push lock (one entry per held lock)."""
    with daemon.store.engine.connect() as conn:
        if daemon.store.dialect == "postgresql":
            wanted = {lock_key(n, "push") for n in names}
            rows = conn.execute(
                text(
                    "SELECT pid, classid, objid FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                )
            ).all()
            holders = []
            for pid, classid, objid in rows:
                key = (int(classid) << 32) | int(objid)
                if key >= 2**63:
                    key -= 2**64
                if key in wanted:
                    holders.append(int(pid))
            return holders
        used = [
            conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": lock_name(n, "push")}).scalar()
            for n in names
        ]
        return [int(u) for u in used if u is not None]


@pytest.fixture
def held_pulls(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Barrier, Any]]:
    """Each pipeline's first pull holds a pooled state connection and waits until all
    ``JOBS`` pulls (and the test) meet, then until the test releases them."""
    meet = threading.Barrier(JOBS + 1)
    release = threading.Event()
    daemon_ref: dict[str, Daemon] = {}
    original = MemoryErp.pull

    def pull(self: MemoryErp, stream: str, since: Any, page_size: int) -> Any:
        if self.pull_calls == 0:
            with daemon_ref["daemon"].store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))  # the job holds a pooled connection too
                meet.wait(timeout=30)
                release.wait(timeout=30)
        return original(self, stream, since, page_size)

    monkeypatch.setattr(MemoryErp, "pull", pull)
    yield meet, (daemon_ref, release)
    release.set()


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_forty_jobs_at_once_never_wait_for_a_connection_and_healthz_keeps_answering(
    server: str,
    tmp_path: Path,
    held_pulls: tuple[threading.Barrier, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = server_url(*SERVERS[server])
    meet, (daemon_ref, release) = held_pulls
    prefix = f"many_{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{i:02d}" for i in range(JOBS)]
    pipelines = [
        {
            "name": n,
            "schedule": {"interval_s": 3600},
            "erp": {"type": "memory"},
            "crm": {"type": "memory-crm"},
        }
        for n in names
    ]
    config = write_config(tmp_path / "stocksync.yaml", pipelines, state_url=url, workers=JOBS)
    daemon = Daemon(config)
    daemon_ref["daemon"] = daemon
    assert daemon.start()
    try:
        assert daemon.health is not None
        with HealthPoller(daemon.health.port) as poller:
            meet.wait(timeout=30)  # every job is inside its pull: 40 locks, 40 connections
            holders = _lock_holders(daemon, names)
            lock_session = daemon.locks.session.session_id
            checked_out = daemon.store.engine.pool.checkedout()  # type: ignore[attr-defined]
            answers_while_held = len(poller.answers)
            time.sleep(1.5)  # /healthz against a daemon whose every worker is busy
            answers_while_held = len(poller.answers) - answers_while_held
            release.set()

            def finished() -> bool:
                runs = [r for n in names for r in daemon.store.runs(n, limit=5)]
                return len([r for r in runs if r.job == "cycle" and r.finished_at]) == JOBS

            wait_until(finished, 30, f"{JOBS} finished cycles")
        statuses = [r.status for n in names for r in daemon.store.runs(n, limit=5)]
    finally:
        daemon.stop.set()
        assert daemon.shutdown() == 0

    # all 40 push locks were held at once, on one dedicated session of the daemon
    assert len(holders) == JOBS
    assert set(holders) == {lock_session}
    assert checked_out >= JOBS
    assert statuses == ["ok"] * JOBS
    assert not poller.errors
    assert answers_while_held >= 3
    slowest = max(s for s, _ in poller.answers)
    assert slowest < 1.0, str([round(s, 2) for s, _ in poller.answers])
    assert {status for _, status in poller.answers} <= {200, 503}
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    names_seen = {e["event"] for e in events}
    assert not names_seen & {"job_failed", "lock_unavailable", "lock_skipped", "lock_lost"}
    assert not [e for e in events if "TimeoutError" in json.dumps(e) or "QueuePool" in str(e)]
    assert len([e for e in events if e["event"] == "lock_connection_opened"]) == 1

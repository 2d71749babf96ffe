"""One-off commands respect the daemon's locks: no second pusher on a pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from structlog.testing import capture_logs

from sync import config as cfg
from sync.runtime import build_pipeline
from sync.service.locks import DaemonAlreadyRunning, JobBusy, Locks, exclusive
from sync.service.scheduler import JobRunner, Slot
from sync.state import StateStore


def test_once_refuses_while_a_daemon_holds_the_sqlite_file(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    daemon = Locks(store.engine)
    daemon.acquire_daemon()
    try:
        with pytest.raises(JobBusy) as info, exclusive(store.engine, "main", "cycle"):
            pass
        assert "daemon is running" in str(info.value)
    finally:
        daemon.release_daemon()
    with exclusive(store.engine, "main", "cycle"):  # free again
        pass
    store.close()


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_pushing_jobs_share_one_lock_on_servers(
    server: str, server_store: Callable[[str], StateStore]
) -> None:
    store = server_store(server)
    replica = Locks(store.engine)
    with replica.job("main", "cycle") as got:
        assert got
        with pytest.raises(JobBusy), exclusive(store.engine, "main", "reconcile"):
            pass
        with replica.job("main", "rescan") as other:  # not a pusher: not excluded
            assert other
    with exclusive(store.engine, "main", "reconcile"):
        pass


def _refusal(url: str) -> str:
    """The DaemonAlreadyRunning message a second daemon on ``url`` gets, or "" if it starts."""
    store = StateStore(url)
    try:
        Locks(store.engine).acquire_daemon()
    except DaemonAlreadyRunning as exc:
        return str(exc)
    finally:
        store.close()
    raise AssertionError(f"a second daemon started on {url}")


def _held(tmp_path: Path) -> tuple[StateStore, Locks, str]:
    """A first daemon holding ``tmp_path/data/state.db``, and the plain path's refusal."""
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "state.db"
    store = StateStore(f"sqlite:///{db}")
    first = Locks(store.engine)
    first.acquire_daemon()
    return store, first, _refusal(f"sqlite:///{db}")


def test_a_symlink_to_the_sqlite_file_is_refused_like_the_plain_path(tmp_path: Path) -> None:
    store, first, plain = _held(tmp_path)
    link = tmp_path / "elsewhere.db"
    link.symlink_to(tmp_path / "data" / "state.db")
    try:
        assert "another stocksync daemon is already running" in plain
        assert _refusal(f"sqlite:///{link}") == plain
    finally:
        first.release_daemon()
        store.close()
    assert not (tmp_path / "elsewhere.db.lock").exists()


def test_a_relative_symlink_chain_through_dotdot_is_refused_like_the_plain_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, first, plain = _held(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "hop.db").symlink_to("../data/state.db")  # relative target
    (tmp_path / "a" / "b" / "link.db").symlink_to("../hop.db")  # a link to a link
    monkeypatch.chdir(tmp_path / "a" / "b")
    try:
        assert _refusal("sqlite:///../b/link.db") == plain  # relative URL with ..
        linked = StateStore("sqlite:///link.db")
        with pytest.raises(JobBusy), exclusive(linked.engine, "main", "cycle"):
            pass  # one-off commands see the same lock
        first.release_daemon()
        with exclusive(linked.engine, "main", "cycle"):  # free once the first daemon stops
            pass
        linked.close()
    finally:
        first.release_daemon()
        store.close()


def _kill_session(store: StateStore, session_id: int | None) -> None:
    """End a server session as an administrator (or a server restart) would."""
    assert session_id is not None
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": session_id})
            gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = :p"
        else:
            conn.execute(text(f"KILL {int(session_id)}"))
            gone = "SELECT count(*) FROM information_schema.processlist WHERE id = :p"
        deadline = time.monotonic() + 30  # a loaded server can take seconds to reap it
        while time.monotonic() < deadline:
            # PostgreSQL keeps one snapshot of pg_stat_activity per transaction: a check
            # in the terminating transaction saw the backend alive for ever (a flaky test)
            conn.rollback()
            if not conn.execute(text(gone), {"p": session_id}).scalar():
                return
            time.sleep(0.05)
    raise AssertionError(f"session {session_id} still alive 30 s after it was ended")


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_killed_lock_connection_is_replaced_and_running_jobs_keep_their_locks(
    server: str, server_store: Callable[[str], StateStore], pipeline: str
) -> None:
    store = server_store(server)
    names = [f"{pipeline}_{i}" for i in range(4)]
    a, b = Locks(store.engine), Locks(store.engine)
    try:
        with ExitStack() as running:
            assert all(running.enter_context(a.job(n, "cycle")) for n in names[:3])
            first = a.session.session_id
            _kill_session(store, first)  # a's three locks die with the session
            # a's next take notices, reconnects and takes back the locks of its running jobs
            assert running.enter_context(a.job(names[3], "cycle"))
            assert a.session.connections == 2 and a.session.session_id != first
            for n in names:  # so the other runner still cannot run any of them
                with b.job(n, "reconcile") as got:
                    assert not got, n
            with a.job(names[0], "cycle") as again:  # nor a second job of this runner
                assert not again
        for n in names:  # released on the new session: free for the other runner
            with b.job(n, "cycle") as got:
                assert got, n
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_lock_taken_by_another_runner_while_the_connection_was_down_is_reported_lost(
    server: str, server_store: Callable[[str], StateStore], pipeline: str
) -> None:
    store = server_store(server)
    a, b = Locks(store.engine), Locks(store.engine)
    try:
        with ExitStack() as a_job, ExitStack() as b_job, capture_logs() as logs:
            assert a_job.enter_context(a.job(pipeline, "cycle"))
            _kill_session(store, a.session.session_id)
            assert b_job.enter_context(b.job(pipeline, "cycle"))  # freed with a's session
            with a.job(f"{pipeline}_next", "cycle") as next_job:
                assert next_job  # a reconnects; its old lock is b's now
            with a.job(pipeline, "cycle") as twice:
                assert not twice  # a never starts a job b holds
            a_job.close()  # a's job ends: releasing its lost lock must not free b's
            with a.job(pipeline, "reconcile") as after:
                assert not after
            b_job.close()
            with a.job(pipeline, "cycle") as free:
                assert free
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["lock_lost"]
    finally:
        a.close()
        b.close()


def test_a_job_whose_lock_server_cannot_be_reached_does_not_run(store: StateStore) -> None:
    settings = cfg.parse(
        "pipelines:\n  - name: main\n    erp: {type: memory}\n    crm: {type: memory-crm}\n"
    )
    slots = {"main": Slot(build_pipeline(settings.pipeline("main"), store))}
    # a PostgreSQL lock server on a port nothing listens on
    unreachable = create_engine("postgresql+psycopg://stocksync@127.0.0.1:1/none")
    runner = JobRunner(slots, Locks(unreachable), threading.Event())
    with capture_logs() as logs:
        runner("main", "cycle")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["lock_unavailable"]
    assert store.runs("main", limit=5) == []

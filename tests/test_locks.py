"""One-off commands respect the daemon's locks: no second pusher on a pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sync.service.locks import DaemonAlreadyRunning, JobBusy, Locks, exclusive
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

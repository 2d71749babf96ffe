"""One-off commands respect the daemon's locks: no second pusher on a pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sync.locks import JobBusy, Locks, exclusive
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

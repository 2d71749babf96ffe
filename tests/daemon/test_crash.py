"""SIGKILL at random moments while the ERP keeps changing: nothing lost, nothing doubled,
into Fxiaoke (one record at a time) and into Salesforce (batches upserted by External ID)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.state import StateStore
from tests.daemon.conftest import (
    MATERIALS,
    DaemonProcess,
    Systems,
    pipeline_config,
    run_cli,
    start_systems,
    stop_systems,
    wait_until,
    write_config,
)

#: daemon starts per CRM: Salesforce's run is shorter (the Fxiaoke one covers the engine,
#: this one the batch path), to keep the suite's time
KILLS = {"fxiaoke": 20, "salesforce": 8}
STOCKS = ("CK001", "CK002", "CK003")


class ErpUsers(threading.Thread):
    """Creates, edits, un-approves, re-approves and cancels documents until stopped."""

    def __init__(self, systems: Systems, seed: int) -> None:
        super().__init__(daemon=True)
        self.k3 = systems.k3
        self.rng = random.Random(seed)
        self.docs: list[tuple[str, int]] = []
        self.halt = threading.Event()
        self.changes = 0

    def step(self) -> None:
        rng, k3 = self.rng, self.k3
        action = rng.choice(["create", "create", "edit", "unaudit", "audit", "cancel", "transfer"])
        if action == "create" or not self.docs:
            form = rng.choice(["STK_InStock", "STK_InStock", "SAL_OUTSTOCK"])
            line = {
                "material": rng.choice(MATERIALS),
                "qty": str(rng.randint(1, 9)),
                "stock": rng.choice(STOCKS),
            }
            fid = k3.create_document(form, [line])
            k3.audit(form, fid)
            self.docs.append((form, fid))
        elif action == "transfer":
            src, dest = rng.sample(STOCKS, 2)
            line = {
                "material": rng.choice(MATERIALS),
                "qty": "1",
                "src_stock": src,
                "dest_stock": dest,
            }
            fid = k3.create_document("STK_TransferDirect", [line])
            k3.audit("STK_TransferDirect", fid)
        else:
            form, fid = rng.choice(self.docs)
            if action == "edit":
                entry = k3.line_ids(form, fid)[0]
                k3.edit_line(form, fid, entry, qty=str(rng.randint(1, 9)))
            elif action == "unaudit":
                k3.unaudit(form, fid)
            elif action == "audit":
                k3.audit(form, fid)
            else:
                k3.cancel(form, fid)
                self.docs.remove((form, fid))
        self.changes += 1

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(0.05, 0.2)):
            try:
                self.step()
            except Exception:  # e.g. editing a cancelled bill: the ERP refuses, users go on
                continue


@pytest.fixture(params=list(KILLS))
def crm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def crm_systems(crm: str) -> Iterator[Systems]:
    s = start_systems(crm)
    try:
        yield s
    finally:
        stop_systems(s)


@pytest.mark.slow  # about a minute: 20+ daemon starts; not deselected in CI
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    crm_systems: Systems, crm: str, tmp_path: Path
) -> None:
    systems = crm_systems
    url = f"sqlite:///{tmp_path}/state.db"
    config = write_config(
        tmp_path / "stocksync.yaml",
        [pipeline_config(systems, pull={"page_size": 5, "overlap_s": 5})],
        state_url=url,
        metrics_port=None,
    )
    rng = random.Random(20260301)
    users = ErpUsers(systems, seed=7)
    users.start()
    try:
        for i in range(KILLS[crm]):
            with DaemonProcess(config, tmp_path / f"run{i}.log") as daemon:
                moment = rng.random()
                if moment < 0.5:  # inside a cycle: right after a stream's pages committed
                    # polled often: a whole cycle can take less than the default poll step
                    daemon.wait_event("stream_pulled", step_s=0.002)
                    time.sleep(rng.uniform(0.0, 0.03))
                elif moment < 0.8:  # anywhere during or between cycles
                    daemon.wait_event("daemon_started")
                    time.sleep(rng.uniform(0.0, 0.9))
                else:  # while starting (config, lock file, migrations, first login)
                    time.sleep(rng.uniform(0.1, 1.5))
                daemon.kill()
    finally:
        users.halt.set()
        users.join(5)
    assert users.changes > 50
    store = StateStore(url)
    killed_mid_cycle = [r for r in store.runs("main", limit=500) if r.status == "running"]
    store.close()
    assert len(killed_mid_cycle) >= KILLS[crm] // 4, "too few kills landed inside a cycle"

    with DaemonProcess(config, tmp_path / "final.log") as daemon:
        # the CRM may already be in sync: a SIGTERM before the daemon has its handlers
        # would end it with the default action, which is not what this test is about
        daemon.wait_event("daemon_started")
        wait_until(systems.in_sync, 40, "CRM equal to ERP after the crashes")
        assert daemon.stop() == 0
    assert systems.in_sync()
    assert not systems.crm_duplicates()
    verify = run_cli("db", "verify", "-c", str(config))
    assert verify.returncode == 0, verify.stdout + verify.stderr

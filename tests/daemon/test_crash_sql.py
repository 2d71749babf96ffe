"""SIGKILL at random moments on a SQL ERP (the shipped U8 mapping over the U8 emulator).

As ``test_crash.py`` does for K/3 Cloud: a real ``stocksync run`` daemon, here with
``erp: type: sql`` reading a SQLite file the U8 emulator writes (documents saved, audited,
edited, un-audited, deleted; transfers, counts, 待发货), pushing to the Fxiaoke emulator
over loopback HTTP, is killed at random moments and restarted. At the end the ledger
equals the mapping's on-hand query for every key, the CRM equals CurrentStock, and no CRM
record is doubled.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_fxiaoke
from connectors.sql.emulator_u8 import U8Emulator
from connectors.sql.settings import SqlSettings
from connectors.sql.source import SqlSource
from sync import config as cfg
from sync.runtime import build_pipeline, open_store
from sync.state import StateStore
from tests.daemon.conftest import DaemonProcess, run_cli, wait_until, write_config
from tests.sql.rig import mapping

KILLS = 14
ITEMS = ("A-100", "B-200", "C-300")
WAREHOUSES = ("01", "02")
ACTIONS = (
    "save",
    "save",
    "save",
    "edit",
    "add",
    "remove",
    "toggle",
    "delete",
    "transfer",
    "count",
    "reserve",
)
Key = tuple[str, str]


class U8Users(threading.Thread):
    """U8's users: save and audit documents, edit, add and remove lines, un-audit,
    re-audit, delete, transfer, count and change 待发货, until stopped."""

    def __init__(self, u8: U8Emulator, seed: int) -> None:
        super().__init__(daemon=True)
        self.u8 = u8
        self.rng = random.Random(seed)
        self.docs: list[tuple[str, int]] = []
        self.halt = threading.Event()
        self.changes = 0
        self.deleted = 0

    def step(self) -> None:
        rng = self.rng
        action = rng.choice(ACTIONS)
        if action == "save" or not self.docs:
            self._save()
        elif action == "transfer":
            source, target = rng.sample(WAREHOUSES, 2)
            self.u8.transfer([(rng.choice(ITEMS), rng.randint(1, 3))], source=source, target=target)
        elif action == "count":
            self.u8.count(rng.choice(ITEMS), rng.choice(WAREHOUSES), rng.randint(0, 30))
        elif action == "reserve":
            self._reserve()
        else:
            self._change(action, *rng.choice(self.docs))
        self.changes += 1

    def _save(self) -> None:
        rng = self.rng
        vouch = rng.choice(["01", "01", "08", "10", "32", "11", "09"])
        sign = -1 if rng.random() < 0.15 else 1  # red ink
        lines = [(rng.choice(ITEMS), sign * rng.randint(1, 9)) for _ in range(rng.randint(1, 3))]
        doc = self.u8.save(vouch, lines, warehouse=rng.choice(WAREHOUSES))
        if rng.random() < 0.85:
            self.u8.audit(vouch, doc)
        self.docs.append((vouch, doc))

    def _reserve(self) -> None:
        rng, u8 = self.rng, self.u8
        item, warehouse = rng.choice(ITEMS), rng.choice(WAREHOUSES)
        held = u8.reserved().get((item, warehouse), Decimal(0))
        if held and rng.random() < 0.5:
            u8.release(item, warehouse, held)
        else:
            u8.commit(item, warehouse, rng.randint(1, 5))

    def _change(self, action: str, vouch: str, doc: int) -> None:
        """Toggle the audit, or edit / add / remove a line / delete: U8 changes only
        unaudited documents, so an audited one is un-audited first (and re-audited)."""
        rng, u8 = self.rng, self.u8
        audited = u8.is_audited(vouch, doc)
        if action == "toggle":
            (u8.unaudit if audited else u8.audit)(vouch, doc)
            return
        if audited:
            u8.unaudit(vouch, doc)
        if action == "delete":
            u8.delete(vouch, doc)
            self.docs.remove((vouch, doc))
            self.deleted += 1
            return
        lines = u8.lines_of(vouch, doc)
        sign = -1 if lines and lines[0].qty < 0 else 1
        if action == "edit" and lines:
            u8.edit_line(vouch, lines[0].autoid, qty=sign * rng.randint(1, 9))
        elif action == "add":
            u8.add_line(vouch, doc, rng.choice(ITEMS), sign * rng.randint(1, 9))
        elif action == "remove" and len(lines) > 1:
            u8.remove_line(vouch, lines[-1].autoid)
        if audited or rng.random() < 0.5:
            u8.audit(vouch, doc)

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(0.02, 0.08)):
            try:
                self.step()
            except Exception:  # e.g. a state the ERP refuses: users go on
                continue


@pytest.fixture
def crm() -> Iterator[tuple[FxiaokeEmulator, LoopbackServer]]:
    fx = build_fxiaoke(
        None, rate_limit_calls=1_000_000, rate_limit_period_s=1, token_limit_per_min=10_000
    )
    for item in ITEMS:
        fx.add_product(item, item)
    for warehouse in WAREHOUSES:
        fx.add_warehouse(warehouse, warehouse)
    server = LoopbackServer(fx).start()
    try:
        yield fx, server
    finally:
        server.stop()


def erp_database(path: Path) -> U8Emulator:
    """The U8 tables in a SQLite file in WAL mode (the daemon reads while users write)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    return U8Emulator(create_engine(f"sqlite:///{path}")).create()


def pipeline(erp_url: str, fx: FxiaokeEmulator, fx_url: str) -> dict[str, Any]:
    info = fx.connection_info(fx_url)
    return {
        "name": "main",
        "schedule": {"interval_s": 1},
        "pull": {"page_size": 4, "overlap_s": 5},
        "push": {"retry_initial_s": 1, "retry_max_s": 2, "batch_size": 20},
        "erp": {**mapping("u8"), "url": erp_url},
        "crm": {
            "type": "fxiaoke",
            "base_url": info["url"],
            "app_id": info["app_id"],
            "app_secret": info["app_secret"],
            "permanent_code": info["permanent_code"],
            "open_user_id": info["open_user_id"],
            "timeout_s": 5,
            "max_attempts": 1,
            "rate_limit_calls": 100000,
            "rate_limit_period_s": 1,
        },
    }


def rescan(config: Path) -> None:
    """The window rescan of pipeline ``main``, as the daemon's rescan job runs it."""
    settings = cfg.load(config)
    store = open_store(settings)
    runtime = build_pipeline(settings.pipelines[0], store)
    try:
        runtime.rescan()
    finally:
        runtime.close()
        store.close()


def nonzero(levels: dict[Key, Decimal]) -> dict[Key, Decimal]:
    return {k: v for k, v in levels.items() if v}


@pytest.mark.slow  # about 15 s: 15 daemon starts
def test_sigkill_on_a_sql_erp_loses_and_doubles_nothing(
    crm: tuple[FxiaokeEmulator, LoopbackServer], tmp_path: Path
) -> None:
    fx, fx_server = crm
    u8 = erp_database(tmp_path / "u8.db")
    erp_url = f"sqlite:///{tmp_path / 'u8.db'}"
    state_url = f"sqlite:///{tmp_path}/state.db"
    config = write_config(
        tmp_path / "stocksync.yaml",
        [pipeline(erp_url, fx, fx_server.url)],
        state_url=state_url,
        metrics_port=None,
    )
    rng = random.Random(20261130)
    users = U8Users(u8, seed=18)
    users.start()
    try:
        for i in range(KILLS):
            with DaemonProcess(config, tmp_path / f"run{i}.log") as daemon:
                moment = rng.random()
                if moment < 0.6:  # inside a cycle: right after a stream's pages committed
                    daemon.wait_event("stream_pulled", step_s=0.002)
                    time.sleep(rng.uniform(0.0, 0.03))
                elif moment < 0.85:  # anywhere during or between cycles
                    daemon.wait_event("daemon_started")
                    time.sleep(rng.uniform(0.0, 0.6))
                else:  # while starting (config, lock file, migrations)
                    time.sleep(rng.uniform(0.1, 1.0))
                daemon.kill()
    finally:
        users.halt.set()
        users.join(5)
    assert not users.is_alive()
    assert users.changes > 30
    store = StateStore(state_url)
    killed_mid_cycle = [r for r in store.runs("main", limit=500) if r.status == "running"]
    store.close()
    assert len(killed_mid_cycle) >= 4, "too few kills landed inside a cycle"

    source = SqlSource(SqlSettings.model_validate({**mapping("u8"), "url": erp_url}))

    def erp_on_hand() -> dict[Key, Decimal]:
        return nonzero({(r.sku, r.warehouse): r.qty for r in source.on_hand()})

    try:
        assert erp_on_hand() == u8.on_hand()  # the mapping's query reads CurrentStock
        # documents un-audited and deleted between two pulls leave no row a pull could see:
        # the window rescan (a nightly cron in the daemon) withdraws their lines
        assert users.deleted > 0
        rescan(config)
        with DaemonProcess(config, tmp_path / "final.log") as daemon:
            daemon.wait_event("daemon_started")
            wait_until(
                lambda: nonzero(fx.stock_by_code()) == u8.on_hand(),
                30,
                "CRM equal to the ERP after the kills",
            )
            assert daemon.stop() == 0
        store = StateStore(state_url)
        try:
            ledger = nonzero({(k.sku, k.warehouse): v for k, v in store.levels("main").items()})
        finally:
            store.close()
        assert ledger == erp_on_hand()
        assert nonzero(fx.stock_by_code()) == u8.on_hand()  # raises on a duplicate record
        assert fx.stock_records() and len(fx.stock_records()) == len(
            {(r["product_id"], r["warehouse_id"]) for r in fx.stock_records()}
        )
    finally:
        source.close()
        u8.engine.dispose()
    verify = run_cli("db", "verify", "-c", str(config))
    assert verify.returncode == 0, verify.stdout + verify.stderr

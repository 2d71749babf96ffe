"""Reconcile at scale: seconds and peak RSS for N stock keys.

``run(keys)`` builds a synced pipeline of ``keys`` stock keys (generated ERP
on-hand and CRM records, ledger baselines and bindings in SQLite), then injects a few differences of
each kind and times a dry run and an ``--apply`` run. Usable from the benchmark
suite or directly: ``python -m benchmarks.reconcile_scale 100000``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import update

from connectors.memory.sink import MemoryCrm, _Record
from sync import config as cfg
from sync.binding import level_hash
from sync.model import CrmLevel, Cursor, LevelValue, OnHand, Page, StockKey
from sync.reconcile_run import reconcile
from sync.runtime import Pipeline
from sync.state import StateStore
from sync.state import schema as s
from sync.state.schema import to_units
from sync.state.store import LEVEL, level_ref

NAME = "bench"
CONFIG = (
    "pipelines:\n"
    f"  - name: {NAME}\n"
    "    erp: {type: memory}\n"
    "    crm: {type: memory-crm}\n"
    "    pull: {overlap_s: 0}\n"
)


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def key_of(i: int) -> StockKey:
    return StockKey(f"SKU{i:07d}", f"WH{i % 3}")


def qty_of(i: int) -> Decimal:
    return Decimal(1 + i % 500)


class GeneratedErp:
    """An ERP of ``keys`` stock keys whose on-hand is computed, not stored.

    A benchmark of reconcile's memory must not be dominated by its fixtures:
    a million-key dict would outweigh everything reconcile itself holds.
    """

    name = "generated"

    def __init__(self, keys: int) -> None:
        self.keys = keys
        self.changed: dict[StockKey, Decimal] = {}

    def streams(self) -> Sequence[str]:
        return ["moves"]

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        return iter(())

    def keys_in_window(self, stream: str, since: datetime) -> Iterator[str]:
        return iter(())

    def on_hand(self) -> Iterator[OnHand]:
        for i in range(self.keys):
            key = key_of(i)
            yield OnHand(key.sku, key.warehouse, self.changed.get(key, qty_of(i)))
        for key, qty in self.changed.items():
            if not key.sku.startswith("SKU"):
                yield OnHand(key.sku, key.warehouse, qty)

    def reserved(self) -> None:
        """This generated ERP keeps no reservations."""
        return None

    def check(self) -> str:
        return "generated ERP"

    def close(self) -> None:
        return None


class GeneratedCrm(MemoryCrm):
    """A CRM of ``keys`` stock records computed on read; only writes are stored."""

    name = "generated-crm"

    def __init__(self, keys: int) -> None:
        super().__init__()
        self.keys = keys
        #: crm id → (key, real, available) of the records written or edited since
        self.edited: dict[str, tuple[StockKey, Decimal, Decimal]] = {}

    def read_levels(self) -> Iterator[CrmLevel]:
        self.calls["read_levels"] += 1
        for i in range(self.keys):
            crm_id = f"L{i}"
            key, qty, available = self.edited.get(crm_id, (key_of(i), qty_of(i), qty_of(i)))
            yield CrmLevel(key.sku, key.warehouse, qty, crm_id, available)
        for crm_id, r in self.levels.items():  # records created or written since
            if crm_id not in self.edited:
                yield CrmLevel(r.key.sku, r.key.warehouse, r.value.real, crm_id, r.value.available)

    def update_level(self, crm_id: str, key: StockKey, value: LevelValue) -> None:
        self.calls["update_level"] += 1
        self.edited[crm_id] = (key, value.real, value.available)


def _chunks(n: int, size: int = 50_000) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def prepare(keys: int, store: StateStore) -> tuple[Pipeline, GeneratedErp, GeneratedCrm]:
    """A pipeline whose ERP, ledger and CRM agree on ``keys`` stock keys, outbox drained."""
    now = datetime.now(UTC)
    erp, crm = GeneratedErp(keys), GeneratedCrm(keys)
    # the state a long-synced pipeline has: baselines and levels, bindings, an empty outbox
    for chunk in _chunks(keys):
        units = {key_of(i): to_units(qty_of(i)) for i in chunk}
        with store.transaction() as tx:
            tx.set_baselines(NAME, units, now, "bench")
            tx.add_level_deltas(NAME, units, now)
            tx.bind_many(
                NAME,
                LEVEL,
                [
                    (
                        level_ref(key_of(i)),
                        f"L{i}",
                        level_hash(LevelValue(qty_of(i), qty_of(i))),
                        qty_of(i),
                    )
                    for i in chunk
                ],
                now,
            )
    with store.transaction() as tx:  # long pushed: no level waits for the outbox
        levels = s.stock_levels
        tx.conn.execute(update(levels).where(levels.c.pipeline == NAME).values(push_pending=0))
    store.set_meta(NAME, "baseline_at", now.isoformat())
    settings = cfg.parse(CONFIG).pipeline(NAME)
    return Pipeline(settings, erp, crm, store), erp, crm


def run(keys: int = 100_000) -> dict[str, Any]:
    """Time a dry run and an apply run over ``keys`` keys; report seconds and peak RSS (MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(f"sqlite:///{Path(tmp) / 'state.db'}")
        store.upgrade()
        t0 = time.perf_counter()
        pipeline, erp, crm = prepare(keys, store)
        setup_s = time.perf_counter() - t0
        rss_before = _peak_rss_mb()
        # a few differences of each kind
        crm.edited["L1"] = (key_of(1), Decimal(-1), qty_of(1))  # someone edits real stock
        erp.changed[key_of(2)] = Decimal(9999)  # a movement the pull missed
        erp.changed[StockKey("NEWSKU", "WH0")] = Decimal(5)  # new in the ERP
        orphan = StockKey("ZZORPHAN", "WH0")  # a CRM record the ERP never had
        crm.levels["orphan"] = _Record(orphan, LevelValue(Decimal(3), Decimal(3)))
        t1 = time.perf_counter()
        dry = reconcile(pipeline)
        dry_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        applied = reconcile(pipeline, apply_changes=True)
        apply_s = time.perf_counter() - t2
        store.close()
    return {
        "keys": keys,
        "setup_s": round(setup_s, 2),
        "dry_run_s": round(dry_s, 2),
        "apply_s": round(apply_s, 2),
        "findings": len(dry.conflicts),
        "remaining_after_apply": applied.remaining,
        "peak_rss_mb_before_reconcile": round(rss_before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))

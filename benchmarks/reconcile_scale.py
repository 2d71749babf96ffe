"""Reconcile at scale with memory connectors: seconds and peak RSS for N stock keys.

``run(keys)`` builds a synced pipeline of ``keys`` stock keys (ERP opening
stock, ledger baseline, CRM records bound), then injects a few differences of
each kind and times a dry run and an ``--apply`` run. Usable from the benchmark
suite or directly: ``python -m benchmarks.reconcile_scale 100000``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.model import LevelValue, StockKey
from sync.push import _level_hash as level_hash
from sync.reconcile_run import reconcile
from sync.runtime import Pipeline
from sync.state import StateStore
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


def prepare(keys: int, store: StateStore) -> tuple[Pipeline, MemoryErp, MemoryCrm]:
    """A pipeline whose ERP, ledger and CRM agree on ``keys`` stock keys, outbox drained."""
    now = datetime.now(UTC)
    erp, crm = MemoryErp(), MemoryCrm()
    snapshot: dict[StockKey, Decimal] = {}
    for i in range(keys):
        key = StockKey(f"SKU{i:07d}", f"WH{i % 3}")
        qty = Decimal(1 + i % 500)
        erp.set_opening(key.sku, key.warehouse, qty)
        crm.levels[f"L{i}"] = _record(key, qty)
        snapshot[key] = qty
    # the state a long-synced pipeline has: baselines and levels, bindings, an empty outbox
    units = {k: to_units(v) for k, v in snapshot.items()}
    with store.transaction() as tx:
        tx.set_baselines(NAME, units, now, "bench")
        tx.add_level_deltas(NAME, units, now)
        tx.set_meta(NAME, "baseline_at", now.isoformat())
    settings = cfg.parse(CONFIG).pipeline(NAME)
    pipeline = Pipeline(settings, erp, crm, store)
    with store.transaction() as tx:
        tx.bind_many(
            NAME,
            LEVEL,
            [
                (level_ref(r.key), crm_id, level_hash(r.value), r.value.real)
                for crm_id, r in crm.levels.items()
            ],
            now,
        )
    return pipeline, erp, crm


def _record(key: StockKey, qty: Decimal) -> Any:
    from connectors.memory.sink import _Record

    return _Record(key, LevelValue(qty, qty))


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
        crm.set_value(StockKey("SKU0000001", "WH1"), Decimal(-1))
        erp.set_opening("SKU0000002", "WH2", 9999)
        erp.set_opening("NEWSKU", "WH0", 5)
        crm.levels["orphan"] = _record(StockKey("ZZORPHAN", "WH0"), Decimal(3))
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

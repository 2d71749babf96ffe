"""Reserved stock: the ERP's snapshot, stored per key, and the static overlay (design note 29).

Available = on hand − reserved, per product × warehouse. On hand is the ledger's
level; reserved is what the ERP reports (``ErpSource.reserved``, read once per
cycle right after the pull) plus the config's static reservation of the key
(``push.reservations``, ``SKU@WAREHOUSE`` only). A key whose reserved figure
changed — in the ERP or in the config — gets an outbox row, so the push writes
its new available figure; a quiet cycle writes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog

from sync.model import STORE_PRECISION, LevelValue, StockKey, exact_units
from sync.ports import ErpSource
from sync.state.store import LEVEL, StateStore, level_ref

log = structlog.get_logger("stocksync.reservations")

#: pipeline_meta entry holding the static reservations last applied (JSON {key: qty})
STATIC_META = "static_reservations"
#: conflict kind of a reserved figure finer than the pipeline's precision (kept, not rounded)
INEXACT = "reserved_inexact"


def parse_key(text: str) -> StockKey:
    """``"SKU@WAREHOUSE"`` → StockKey (split at the last ``@``: warehouse codes have none).

    Raises ValueError when the warehouse or the SKU is missing.
    """
    sku, at, warehouse = text.rpartition("@")
    if not at or not sku or not warehouse:
        raise ValueError(f"{text!r} names no warehouse: write it as SKU@WAREHOUSE")
    return StockKey(sku, warehouse)


def static_reserved(key: StockKey, reservations: Mapping[str, Decimal]) -> Decimal:
    """The config's static reservation of ``key`` (``"SKU@WAREHOUSE"``), else 0.

    A bare ``SKU`` is refused by the config's validation, never applied to every
    warehouse (issue 15).
    """
    return reservations.get(str(key), Decimal(0))


def level_value(level: Decimal, reserved: Decimal) -> LevelValue:
    """What the CRM gets for one key: on hand, and available = on hand − reserved.

    Available below zero (reservations over stock, as some ERPs allow) is kept as is.
    """
    return LevelValue(real=level, available=level - reserved)


@dataclass(slots=True)
class ReservationReport:
    #: False when the source keeps no reservations (``reserved()`` gave None)
    supported: bool = True
    #: keys with reserved stock in the ERP's snapshot
    keys: int = 0
    #: keys queued for a push because their reserved figure (ERP or static) changed
    changed: int = 0
    #: keys whose snapshot figure had more decimals than the pipeline keeps
    rejected: int = 0


def refresh_reservations(
    store: StateStore,
    source: ErpSource,
    pipeline: str,
    *,
    now: datetime,
    static: Mapping[str, Decimal],
    precision: int = STORE_PRECISION,
) -> ReservationReport:
    """Read the ERP's reserved snapshot, store what changed and queue those keys.

    One transaction: the stored figures, the outbox rows of the keys they change
    and the static reservations last applied commit together, so a crash between
    them re-does the whole diff on the next cycle. A figure with more decimals
    than ``precision`` is not rounded: the key keeps its previous figure and a
    ``reserved_inexact`` conflict names ``pipelines[].precision``.
    Raises what ``source.reserved()`` raises; nothing is stored then.
    """
    snapshot = source.reserved()
    report = ReservationReport(supported=snapshot is not None)
    totals: dict[StockKey, Decimal] = defaultdict(Decimal)
    for item in snapshot if snapshot is not None else ():
        totals[item.stock_key] += item.qty
    stored = store.reserved_units(pipeline)
    fresh: dict[StockKey, int] = {}
    inexact: dict[StockKey, Decimal] = {}
    for key, qty in totals.items():
        units = exact_units(qty, precision)
        if units is None:
            inexact[key] = qty
            units = stored.get(key, 0)
        if units:
            fresh[key] = units
    changes = {
        key: fresh.get(key, 0)
        for key in stored.keys() | fresh.keys()
        if stored.get(key, 0) != fresh.get(key, 0)
    }
    old_static: dict[str, str] = json.loads(store.meta(pipeline, STATIC_META) or "{}")
    new_static = {ref: format(qty, "f") for ref, qty in sorted(static.items())}
    static_changed = {
        parse_key(ref)
        for ref in old_static.keys() | new_static.keys()
        if Decimal(old_static.get(ref, "0")) != Decimal(new_static.get(ref, "0"))
    }
    queue = sorted(changes.keys() | static_changed)
    if queue or inexact or old_static != new_static:
        with store.transaction() as tx:
            tx.set_reserved(pipeline, changes, now)
            tx.enqueue(pipeline, LEVEL, [level_ref(k) for k in queue], now)
            if old_static != new_static:
                tx.set_meta(pipeline, STATIC_META, json.dumps(new_static, sort_keys=True))
            for key, qty in sorted(inexact.items()):
                tx.record_conflict(
                    kind=INEXACT,
                    pipeline=pipeline,
                    ref=level_ref(key),
                    now=now,
                    erp=qty,
                    detail={
                        "message": f"the ERP reports {qty:f} reserved, more than {precision} "
                        "decimal places; the previous figure is kept (raise "
                        "pipelines[].precision if the ERP really counts this finely)"
                    },
                )
    report.keys, report.changed, report.rejected = len(fresh), len(queue), len(inexact)
    if queue or inexact:
        log.info(
            "reservations_refreshed",
            pipeline=pipeline,
            keys=report.keys,
            changed=report.changed,
            rejected=report.rejected,
        )
    return report

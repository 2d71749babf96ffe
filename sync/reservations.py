"""Reserved stock: the ERP's snapshot, stored per key, and the static overlay (architecture §9).

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog

from sync.model import STORE_PRECISION, LevelValue, Reserved, StockKey, exact_units, parse_stock_key
from sync.ports import ErpSource
from sync.state.store import LEVEL, StateStore, level_ref
from sync.state.tx import Tx

log = structlog.get_logger("stocksync.reservations")

#: pipeline_meta entry holding the static reservations last applied (JSON {key: qty})
STATIC_META = "static_reservations"
#: conflict kind of a reserved figure finer than the pipeline's precision (kept, not rounded)
INEXACT = "reserved_inexact"


#: ``"SKU@WAREHOUSE"`` → StockKey (ValueError without a warehouse)
parse_key = parse_stock_key


def static_reserved(key: StockKey, reservations: Mapping[str, Decimal]) -> Decimal:
    """The config's static reservation of ``key`` (``"SKU@WAREHOUSE"``), else 0.

    A bare ``SKU`` is refused by the config's validation, never applied to every
    warehouse (issue 15).
    """
    return reservations.get(str(key), Decimal(0))


def reserved_of(erp: Decimal, key: StockKey, static: Mapping[str, Decimal]) -> Decimal:
    """A key's reserved stock as the CRM is given it: the ERP's stored figure plus the
    key's static reservation (the one place the two are added)."""
    return erp + static_reserved(key, static)


def static_applied(static: Mapping[str, Decimal]) -> dict[str, str]:
    """Static reservations as kept in ``pipeline_meta`` to notice a config edit: {key: qty}."""
    return {ref: format(qty, "f") for ref, qty in sorted(static.items())}


def static_changes(old: Mapping[str, str], new: Mapping[str, str]) -> set[StockKey]:
    """Keys whose static reservation differs between two ``static_applied`` sets."""
    return {
        parse_key(ref)
        for ref in old.keys() | new.keys()
        if Decimal(old.get(ref, "0")) != Decimal(new.get(ref, "0"))
    }


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


def snapshot_totals(snapshot: Iterable[Reserved]) -> dict[StockKey, Decimal]:
    """An ERP's reserved snapshot summed per key (items for one key add up, ``ErpSource.reserved``).

    Keys whose items sum to zero are kept (at 0): stored as nothing, i.e. released.
    """
    totals: dict[StockKey, Decimal] = defaultdict(Decimal)
    for item in snapshot:
        totals[item.stock_key] += item.qty
    return dict(totals)


def _changes(
    stored: Mapping[StockKey, int], totals: Mapping[StockKey, Decimal], precision: int
) -> tuple[dict[StockKey, int], dict[StockKey, Decimal], int]:
    """(changed keys → new micro-units, 0 = released; figures too fine to store; keys reserved).

    ``stored`` are the keys compared: a key of ``stored`` absent from ``totals`` is released.
    A figure with more decimals than ``precision`` keeps the stored one (never rounded).
    """
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
    return changes, inexact, len(fresh)


def _record_inexact(
    tx: Tx, pipeline: str, inexact: Mapping[StockKey, Decimal], now: datetime, precision: int
) -> None:
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


def store_reserved(
    store: StateStore,
    pipeline: str,
    figures: Mapping[StockKey, Decimal],
    *,
    now: datetime,
    precision: int = STORE_PRECISION,
) -> set[StockKey]:
    """Store the ERP's reserved figure of just these keys and queue those that changed.

    ``figures``: key → the ERP's reserved stock (0 = released), e.g. reconcile's
    ``reserved_drift`` findings under ``erp_wins``. Other keys and the static
    overlay are left alone. One transaction, with the same diff and the same
    refusal of a too-fine figure (a ``reserved_inexact`` conflict) as
    ``refresh_reservations``. Returns the keys whose stored figure now is the
    given one (changed or already equal); a too-fine figure's key is not among them.
    """
    every = store.reserved_units(pipeline)
    stored = {key: every[key] for key in figures if key in every}
    changes, inexact, _ = _changes(stored, figures, precision)
    if changes or inexact:
        with store.transaction() as tx:
            tx.set_reserved(pipeline, changes, now)
            tx.enqueue(pipeline, LEVEL, [level_ref(k) for k in sorted(changes)], now)
            _record_inexact(tx, pipeline, inexact, now, precision)
    return set(figures) - set(inexact)


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
    totals = snapshot_totals(snapshot if snapshot is not None else ())
    changes, inexact, report.keys = _changes(store.reserved_units(pipeline), totals, precision)
    old_static: dict[str, str] = json.loads(store.meta(pipeline, STATIC_META) or "{}")
    new_static = static_applied(static)
    static_changed = static_changes(old_static, new_static)
    queue = sorted(changes.keys() | static_changed)
    if queue or inexact or old_static != new_static:
        with store.transaction() as tx:
            tx.set_reserved(pipeline, changes, now)
            tx.enqueue(pipeline, LEVEL, [level_ref(k) for k in queue], now)
            if old_static != new_static:
                tx.set_meta(pipeline, STATIC_META, json.dumps(new_static, sort_keys=True))
            _record_inexact(tx, pipeline, inexact, now, precision)
    report.changed, report.rejected = len(queue), len(inexact)
    if queue or inexact:
        log.info(
            "reservations_refreshed",
            pipeline=pipeline,
            keys=report.keys,
            changed=report.changed,
            rejected=report.rejected,
        )
    return report

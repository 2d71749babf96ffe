"""Reconcile's inputs: fetch E, L, C, P and reserved stock (architecture §6, step 1) and plan.

Sequence: baseline if the pipeline has none, catch up (pull and reserved stock,
as a cycle does), snapshot E, catch up again (keys moved by the second catch-up
are in flux), read the ERP's reserved snapshot and the stored one, read C,
stream L and P from the state DB, ``sync.reconcile.plan``. Memory stays flat in
the number of keys: E and C are spooled to disk and read back sorted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal

from sync.model import LevelValue, StockKey
from sync.reconcile import (
    CrmRecord,
    CrmValue,
    FigureCheck,
    Finding,
    Policies,
    ReservedValue,
    plan,
)
from sync.reservations import snapshot_totals, static_reserved
from sync.runtime import Pipeline
from sync.state.schema import from_units
from sync.state.scratch import SortedSpool
from sync.state.store import LEVEL, level_ref

Row = tuple[StockKey, Decimal]


def _catch_up(pipeline: Pipeline, run_id: str) -> set[StockKey]:
    return set(pipeline.pull(run_id).touched)


def _erp_sorted(pipeline: Pipeline, spool: SortedSpool) -> Iterator[tuple[StockKey, Decimal]]:
    spool.add((row.stock_key, row.qty, None) for row in pipeline.source.on_hand())
    return spool.summed()


def _crm_sorted(pipeline: Pipeline, spool: SortedSpool) -> Iterator[tuple[StockKey, CrmValue]]:
    """The CRM's records by key. Several records for one key (duplicates, architecture §6.3):
    the one bound is kept and compared, else the oldest (the one a push would bind)."""
    levels = pipeline.sink.read_levels()
    spool.add(
        (lvl.stock_key, lvl.qty, _pack(lvl.crm_id, lvl.available, lvl.reserved)) for lvl in levels
    )
    for key, rows in spool.grouped():
        unpacked = [(qty, *_unpack(tag)) for qty, tag in rows]
        records = [CrmRecord(crm_id, qty) for qty, crm_id, _, _ in unpacked]
        figures = {crm_id: (avail, blocked) for _, crm_id, avail, blocked in unpacked}
        kept = records[0]
        if len(records) > 1:
            binding = pipeline.store.binding(pipeline.name, LEVEL, level_ref(key))
            bound = [r for r in records if binding is not None and r.crm_id == binding.crm_id]
            kept = bound[0] if bound else kept
        extras = tuple(r for r in records if r is not kept)
        yield key, CrmValue(kept.qty, kept.crm_id, extras, *figures[kept.crm_id])


def _pack(crm_id: str, available: Decimal | None, reserved: Decimal | None) -> str:
    """A CRM record's id, available and blocked figures as one spool tag (ids hold no \x1f)."""
    figures = ("" if q is None else str(q) for q in (available, reserved))
    return "\x1f".join((crm_id, *figures))


def _unpack(tag: str | None) -> tuple[str, Decimal | None, Decimal | None]:
    crm_id, available, reserved = (tag or "\x1f\x1f").split("\x1f")
    return crm_id, _opt(available), _opt(reserved)


def _opt(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def _reserved_sorted(pipeline: Pipeline) -> list[tuple[StockKey, ReservedValue]]:
    """The keys with reserved stock in the ERP's snapshot or stored by the last cycle,
    sorted, with both figures (``erp`` None when the ERP keeps no reservations).

    Held in memory, not spooled: the port's contract makes the snapshot the keys
    with reserved stock (``ErpSource.reserved``), and ``refresh_reservations``
    already holds the stored figures the same way every cycle — both grow with
    open reservations, not with the keys of the pipeline.
    """
    snapshot = pipeline.source.reserved()
    stored = pipeline.store.reserved_units(pipeline.name)
    erp = snapshot_totals(snapshot) if snapshot is not None else None
    keys = sorted(stored.keys() | (erp or {}).keys())
    return [
        (
            key,
            ReservedValue(
                None if erp is None else erp.get(key, Decimal(0)),
                from_units(stored.get(key, 0)),
            ),
        )
        for key in keys
    ]


def collect(pipeline: Pipeline, run_id: str, policies: Policies) -> tuple[list[Finding], int]:
    """Fetch the five sides (architecture §6, step 1) and plan; return findings, keys compared."""
    pipeline.ensure_baseline(run_id)
    _catch_up(pipeline, run_id)
    # reserved stock caught up as a cycle does: a reservation made since the last cycle is
    # news, not drift (the snapshot read below is compared with what this stored)
    pipeline.refresh_reservations()
    # both snapshots are spooled to disk and read back sorted: memory stays flat
    with SortedSpool() as erp_spool, SortedSpool() as crm_spool:
        erp = _erp_sorted(pipeline, erp_spool)
        in_flux = _catch_up(pipeline, run_id)
        reserved = _reserved_sorted(pipeline)
        crm = _crm_sorted(pipeline, crm_spool)
        return _plan(pipeline, erp, crm, reserved, in_flux, policies)


def _figure_check(pipeline: Pipeline) -> FigureCheck:
    """The CRM's available and blocked figures at their fields' precision, the static
    reservations (``push.reservations``) added to the stored ones, and the keys whose
    write is still owed (an outbox row: their CRM figures are not compared)."""
    sink, reservations = pipeline.sink, pipeline.settings.push.reservations
    owed = pipeline.store.levels_in_outbox(pipeline.name)

    def static(key: StockKey) -> Decimal:
        return static_reserved(key, reservations)

    def available(qty: Decimal) -> Decimal:
        return sink.shown_level(LevelValue(qty, qty)).available

    def reserved(on_hand: Decimal, qty: Decimal) -> Decimal:
        return sink.shown_reserved(LevelValue(on_hand, on_hand - qty))

    return FigureCheck(static, available, reserved, frozenset(owed))


def _plan(
    pipeline: Pipeline,
    erp: Iterator[tuple[StockKey, Decimal]],
    crm: Iterator[tuple[StockKey, CrmValue]],
    reserved: list[tuple[StockKey, ReservedValue]],
    in_flux: set[StockKey],
    policies: Policies,
) -> tuple[list[Finding], int]:
    store = pipeline.store
    counter = [0]

    def ledger(rows: Iterator[tuple[StockKey, Decimal, Decimal | None]]) -> Iterator[Row]:
        for key, level, _ in rows:
            counter[0] += 1
            yield key, level

    # one streamed query feeds two sides; tee buffers only the small lag between them
    ledger_rows, pushed_rows = itertools.tee(store.iter_level_bindings(pipeline.name))
    pushed = ((k, p) for k, _, p in pushed_rows if p is not None)
    sink = pipeline.sink

    def shown(qty: Decimal) -> Decimal:  # real stock as the CRM shows it
        return sink.shown_level(LevelValue(qty, qty)).real

    figures = _figure_check(pipeline)
    findings = plan(
        erp, ledger(ledger_rows), crm, pushed, in_flux, policies, shown, figures, reserved
    )
    return findings, counter[0]

"""Three-way reconcile, the decision half (DESIGN §6): ERP vs ledger vs CRM, no I/O.

``plan`` merge-joins four inputs sorted by (sku, warehouse) — ERP on-hand (E),
ledger levels (L), CRM values (C) and last pushed values (P) — in one pass, so
memory stays flat however many keys there are: only the findings are kept.
``sync.reconcile_run`` fetches the inputs and applies the findings.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from sync.model import StockKey

if TYPE_CHECKING:
    from sync.reconcile_run import ReconcileResult
    from sync.runtime import Pipeline


class FindingKind(StrEnum):
    ERP_LEDGER_DRIFT = "erp_ledger_drift"
    CRM_MODIFIED = "crm_modified"
    MISSING_IN_CRM = "missing_in_crm"
    ORPHAN_IN_CRM = "orphan_in_crm"
    DUPLICATE_IN_CRM = "duplicate_in_crm"
    IN_FLUX = "in_flux"


class Action(StrEnum):
    #: report only (policy ``report_only``, or nothing can be done this time)
    NONE = "none"
    #: write an ADJUSTMENT movement so that L = E
    ADJUST = "adjust"
    #: push the ledger level over the CRM's value
    OVERWRITE = "overwrite"
    #: create the CRM record
    CREATE = "create"
    #: set the orphan CRM record to zero
    ZERO = "zero"
    #: invalidate the CRM's extra records of a key, keeping the bound one
    INVALIDATE = "invalidate"


Policy = Literal["erp_wins", "report_only"]
#: a quantity as the CRM shows it (``CrmSink.shown_level``), e.g. 139.625 → 139.62
Shown = Callable[[Decimal], Decimal]


def exact(qty: Decimal) -> Decimal:
    """A CRM that holds every quantity exactly."""
    return qty


def shows(crm: Decimal, qty: Decimal, shown: Shown = exact) -> bool:
    """Does a CRM value ``crm`` show ``qty`` at the CRM field's precision?

    Yes when it is the value stocksync writes (``shown``: half-even, 139.625 →
    139.62); and, when that rounds, also any value within half a unit of the
    field's last place — 139.63 is a correct rounding of 139.625 too (half-up, as
    a person or another tool may round), so it is not a CRM edit.
    """
    if crm == qty:  # the common case, without asking the sink
        return True
    written = shown(qty)
    if crm == written:
        return True
    if written == qty:
        return False
    exponent = written.as_tuple().exponent
    if not isinstance(exponent, int):
        return False
    return abs(crm - qty) <= Decimal(5).scaleb(exponent - 1)


#: the kinds that are differences (in_flux is a "look again next time", not a conflict)
CONFLICT_KINDS = (
    FindingKind.ERP_LEDGER_DRIFT,
    FindingKind.CRM_MODIFIED,
    FindingKind.MISSING_IN_CRM,
    FindingKind.ORPHAN_IN_CRM,
    FindingKind.DUPLICATE_IN_CRM,
)


@dataclass(frozen=True, slots=True)
class Policies:
    """What each finding implies (``reconcile:`` in the pipeline config)."""

    erp_ledger_drift: Policy = "erp_wins"
    crm_modified: Policy = "erp_wins"
    missing_in_crm: Policy = "erp_wins"
    orphan_in_crm: Literal["report_only", "zero"] = "report_only"
    duplicate_in_crm: Literal["report_only", "invalidate_extras"] = "report_only"


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One CRM stock record: its id and real stock."""

    crm_id: str
    qty: Decimal


@dataclass(frozen=True, slots=True)
class CrmValue:
    """The CRM's record of a key as reconcile sees it (C and the id to write to).

    ``extras``: the key's other live records (duplicates), which the record kept
    (the bound one, else the oldest) is compared without.
    """

    qty: Decimal
    crm_id: str
    extras: tuple[CrmRecord, ...] = ()
    #: the record's available figure, when the CRM keeps one (compared with L − reserved)
    available: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference for one stock key, with every value seen and the action implied."""

    kind: FindingKind
    key: StockKey
    erp: Decimal | None
    ledger: Decimal | None
    crm: Decimal | None
    pushed: Decimal | None
    action: Action
    crm_id: str | None = None
    #: ``duplicate_in_crm``: the key's records besides ``crm_id`` (the one kept)
    extras: tuple[CrmRecord, ...] = ()

    @property
    def is_conflict(self) -> bool:
        return self.kind is not FindingKind.IN_FLUX

    def duplicates_json(self) -> list[dict[str, str]]:
        """The other records of a ``duplicate_in_crm`` as [{"crm_id": …, "crm": "7"}]."""
        return [{"crm_id": r.crm_id, "crm": str(r.qty)} for r in self.extras]


@dataclass(frozen=True, slots=True)
class _Row:
    key: StockKey
    erp: Decimal | None = None
    ledger: Decimal | None = None
    crm: CrmValue | None = None
    pushed: Decimal | None = None


def _tagged(
    items: Iterable[tuple[StockKey, object]], index: int, side: str
) -> Iterator[tuple[tuple[str, str], int, StockKey, object]]:
    """Items as ((sku, warehouse), side index, key, value); fails if not strictly ascending.

    Plain string tuples keep the merge's comparisons in C (dataclass ``__lt__`` is slow).
    """
    last: tuple[str, str] | None = None
    for key, value in items:
        order = (key.sku, key.warehouse)
        if last is not None and order <= last:
            raise ValueError(f"reconcile input {side!r} is not sorted by (sku, warehouse) at {key}")
        last = order
        yield order, index, key, value


def merge(
    erp: Iterable[tuple[StockKey, Decimal]],
    ledger: Iterable[tuple[StockKey, Decimal]],
    crm: Iterable[tuple[StockKey, CrmValue]],
    pushed: Iterable[tuple[StockKey, Decimal | None]],
) -> Iterator[_Row]:
    """Full outer merge-join of four key-sorted streams, one row per key."""
    streams = [
        _tagged(source, index, side)
        for index, (side, source) in enumerate(
            (("erp", erp), ("ledger", ledger), ("crm", crm), ("pushed", pushed))
        )
    ]
    current: tuple[str, str] | None = None
    current_key: StockKey | None = None
    values: list[object] = [None, None, None, None]
    # (order, side) pairs are unique, so tuples never compare keys or values
    for order, index, key, value in heapq.merge(*streams):
        if order != current:
            if current_key is not None:
                yield _Row(current_key, *values)  # type: ignore[arg-type]
            current, current_key, values = order, key, [None, None, None, None]
        values[index] = value
    if current_key is not None:
        yield _Row(current_key, *values)  # type: ignore[arg-type]


def _duplicates(row: _Row, policies: Policies) -> Iterator[Finding]:
    """``duplicate_in_crm`` when the key has more than one live CRM record."""
    c = row.crm
    if c is not None and c.extras:
        invalidate = policies.duplicate_in_crm == "invalidate_extras"
        action = Action.INVALIDATE if invalidate else Action.NONE
        kind = FindingKind.DUPLICATE_IN_CRM
        yield Finding(
            kind, row.key, row.erp, row.ledger, c.qty, row.pushed, action, c.crm_id, c.extras
        )


#: the reservation of a key (available = level − reserved), as the push computes it
Reserved = Callable[[StockKey], Decimal]


@dataclass(frozen=True, slots=True)
class AvailableCheck:
    """How to compare a CRM record's available figure: the key's reservation, and the
    available field as the CRM shows it (its own precision, which may differ from real's)."""

    reserved: Reserved
    shown: Shown = exact


def _edited(
    c: CrmValue,
    reference: Decimal,
    ledger_qty: Decimal,
    shown: Shown,
    available: AvailableCheck | None,
    key: StockKey,
) -> bool:
    """Does the CRM show something stocksync neither wrote last nor would write now?

    Real stock is compared with P (else L); available, when the CRM keeps it and the
    reservations are known, with the same minus the key's reservation: a person who
    edits available stock alone is found too."""
    if not shows(c.qty, reference, shown) and not shows(c.qty, ledger_qty, shown):
        return True
    if c.available is None or available is None:
        return False
    r, show = available.reserved(key), available.shown
    return not shows(c.available, reference - r, show) and not shows(
        c.available, ledger_qty - r, show
    )


def _decide(
    row: _Row, policies: Policies, shown: Shown, available: AvailableCheck | None = None
) -> Iterator[Finding]:
    e, l_, c, p = row.erp, row.ledger, row.crm, row.pushed
    crm_qty = c.qty if c is not None else None
    crm_id = c.crm_id if c is not None else None

    def finding(kind: FindingKind, action: Action) -> Finding:
        return Finding(kind, row.key, e, l_, crm_qty, p, action, crm_id)

    erp_qty = e if e is not None else Decimal(0)
    ledger_qty = l_ if l_ is not None else Decimal(0)
    known = e is not None or l_ is not None
    if known and erp_qty != ledger_qty:
        wins = policies.erp_ledger_drift == "erp_wins"
        yield finding(FindingKind.ERP_LEDGER_DRIFT, Action.ADJUST if wins else Action.NONE)
    if c is None:
        if erp_qty or ledger_qty:
            wins = policies.missing_in_crm == "erp_wins"
            yield finding(FindingKind.MISSING_IN_CRM, Action.CREATE if wins else Action.NONE)
        return
    if not known:
        # a CRM record at zero with no stock anywhere agrees with the ERP (e.g. one we zeroed)
        if c.qty != 0:
            zero = policies.orphan_in_crm == "zero"
            yield finding(FindingKind.ORPHAN_IN_CRM, Action.ZERO if zero else Action.NONE)
        return
    # C is compared with what we last wrote; never written: with the ledger. A CRM
    # already showing the ledger's value needs nothing, whatever the binding says.
    reference = p if p is not None else ledger_qty
    if _edited(c, reference, ledger_qty, shown, available, row.key):
        wins = policies.crm_modified == "erp_wins"
        yield finding(FindingKind.CRM_MODIFIED, Action.OVERWRITE if wins else Action.NONE)


def plan(
    erp_on_hand: Iterable[tuple[StockKey, Decimal]],
    ledger_levels: Iterable[tuple[StockKey, Decimal]],
    crm_levels: Iterable[tuple[StockKey, CrmValue]],
    pushed: Iterable[tuple[StockKey, Decimal | None]],
    in_flux: Set[StockKey] = frozenset(),
    policies: Policies = Policies(),
    shown: Shown = exact,
    available: AvailableCheck | None = None,
) -> list[Finding]:
    """Every difference between E, L, C and P, with the action ``policies`` imply. Pure.

    Each input must be sorted by (sku, warehouse) with unique keys (ValueError
    otherwise). A missing ERP figure counts as zero when the ledger knows the key
    (ERPs leave empty stock out of on-hand). A CRM value with ``extras`` is a
    ``duplicate_in_crm``; the key's other findings compare the record kept. A key
    in ``in_flux`` moved while E was taken: it yields one ``in_flux`` finding and
    no conflict, and is compared next time. The CRM is compared at its field's
    precision (``shows``): a ledger 139.625 and a CRM 139.62 (or 139.63) are in
    sync. With ``available``, a CRM value's available figure is compared too
    (the same reference less the key's reservation, at the available field's
    precision). Time is linear in the number
    of keys; memory holds only findings.
    """
    findings: list[Finding] = []
    for row in merge(erp_on_hand, ledger_levels, crm_levels, pushed):
        if row.key in in_flux:
            findings.append(
                Finding(
                    FindingKind.IN_FLUX,
                    row.key,
                    row.erp,
                    row.ledger,
                    row.crm.qty if row.crm else None,
                    row.pushed,
                    Action.NONE,
                    row.crm.crm_id if row.crm else None,
                )
            )
            continue
        findings.extend(_duplicates(row, policies))
        findings.extend(_decide(row, policies, shown, available))
    return findings


def run_scheduled(pipeline: Pipeline) -> ReconcileResult:
    """The daemon's cron job: reconcile with ``--apply`` semantics and the configured policies."""
    from sync.reconcile_run import run_scheduled as run

    return run(pipeline)

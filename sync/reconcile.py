"""Three-way reconcile, the decision half (architecture §6): ERP vs ledger vs CRM, no I/O.

``plan`` merge-joins five inputs sorted by (sku, warehouse) — ERP on-hand (E),
ledger levels (L), CRM values (C), last pushed values (P) and reserved stock
(the ERP's snapshot beside the figure stored by the last cycle) — in one pass,
so memory stays flat however many keys there are: only the findings are kept.
Each of the CRM's three figures (real, available, blocked) has its own finding
kind. ``sync.reconcile_run`` fetches the inputs and applies the findings.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from sync.model import StockKey
from sync.reconcile_figures import FigureCheck as FigureCheck
from sync.reconcile_figures import Shown as Shown
from sync.reconcile_figures import available_edited, reserved_edited
from sync.reconcile_figures import exact as exact
from sync.reconcile_figures import shows as shows


class FindingKind(StrEnum):
    ERP_LEDGER_DRIFT = "erp_ledger_drift"
    #: the ERP's reserved stock differs from the figure the last cycle stored
    RESERVED_DRIFT = "reserved_drift"
    #: real stock (on hand) edited in the CRM
    CRM_MODIFIED = "crm_modified"
    #: the blocked (reserved) figure edited in the CRM
    CRM_RESERVED_MODIFIED = "crm_reserved_modified"
    #: the available figure edited in the CRM
    CRM_AVAILABLE_MODIFIED = "crm_available_modified"
    MISSING_IN_CRM = "missing_in_crm"
    ORPHAN_IN_CRM = "orphan_in_crm"
    DUPLICATE_IN_CRM = "duplicate_in_crm"
    IN_FLUX = "in_flux"


class Action(StrEnum):
    #: report only (policy ``report_only``, or nothing can be done this time)
    NONE = "none"
    #: write an ADJUSTMENT movement so that L = E
    ADJUST = "adjust"
    #: store the ERP's reserved figure and queue the key for a push
    STORE = "store"
    #: push the ledger level over the CRM's value
    OVERWRITE = "overwrite"
    #: create the CRM record
    CREATE = "create"
    #: set the orphan CRM record to zero
    ZERO = "zero"
    #: invalidate the CRM's extra records of a key, keeping the bound one
    INVALIDATE = "invalidate"


Policy = Literal["erp_wins", "report_only"]

#: the kinds that are differences (in_flux is a "look again next time", not a conflict)
CONFLICT_KINDS = (
    FindingKind.ERP_LEDGER_DRIFT,
    FindingKind.RESERVED_DRIFT,
    FindingKind.CRM_MODIFIED,
    FindingKind.CRM_RESERVED_MODIFIED,
    FindingKind.CRM_AVAILABLE_MODIFIED,
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
    reserved_drift: Policy = "erp_wins"
    crm_reserved_modified: Policy = "erp_wins"
    crm_available_modified: Policy = "erp_wins"


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
    #: the record's blocked figure, when the CRM keeps one (compared with reserved)
    reserved: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReservedValue:
    """A key's reserved stock: the ERP's snapshot figure and the one the last cycle stored.

    ``erp`` is None when the ERP keeps no reservations (``ErpSource.reserved`` gave
    None): nothing to compare then. Neither includes the static overlay.
    """

    erp: Decimal | None
    stored: Decimal


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference for one stock key, with every value seen and the action implied.

    The values are in the figure the kind is about. On hand (drift, ``crm_modified``,
    missing, orphan, duplicate, in flux): E, L, C, P. ``reserved_drift``: the
    ERP's reserved, the stored reserved, the CRM's blocked figure, None.
    ``crm_reserved_modified``: the ERP's reserved (None when it keeps none, or when
    the key has no reservation in its snapshot nor stored), the
    reserved stocksync writes (stored + static), the CRM's blocked figure, None
    (the binding keeps no reserved figure). ``crm_available_modified``: None,
    L − reserved, the CRM's available figure, P − reserved.
    """

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
    reserved: ReservedValue | None = None


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
    reserved: Iterable[tuple[StockKey, ReservedValue]] = (),
) -> Iterator[_Row]:
    """Full outer merge-join of five key-sorted streams, one row per key."""
    sides: tuple[tuple[str, Iterable[tuple[StockKey, object]]], ...] = (
        ("erp", erp),
        ("ledger", ledger),
        ("crm", crm),
        ("pushed", pushed),
        ("reserved", reserved),
    )
    streams = [_tagged(source, index, side) for index, (side, source) in enumerate(sides)]
    current: tuple[str, str] | None = None
    current_key: StockKey | None = None
    values: list[object] = [None] * len(sides)
    # (order, side) pairs are unique, so tuples never compare keys or values
    for order, index, key, value in heapq.merge(*streams):
        if order != current:
            if current_key is not None:
                yield _Row(current_key, *values)  # type: ignore[arg-type]
            current, current_key, values = order, key, [None] * len(sides)
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


def _wins(policy: str, action: Action) -> Action:
    return action if policy == "erp_wins" else Action.NONE


def _reserved_drift(row: _Row, policies: Policies) -> Iterator[Finding]:
    """``reserved_drift`` when the ERP's reserved figure is not the one stored."""
    r = row.reserved
    if r is not None and r.erp is not None and r.erp != r.stored:
        crm = row.crm.reserved if row.crm is not None else None
        crm_id = row.crm.crm_id if row.crm is not None else None
        action = _wins(policies.reserved_drift, Action.STORE)
        kind = FindingKind.RESERVED_DRIFT
        yield Finding(kind, row.key, r.erp, r.stored, crm, None, action, crm_id)


def _figures(
    row: _Row, on_hand: tuple[Decimal, ...], policies: Policies, check: FigureCheck
) -> Iterator[Finding]:
    """The CRM's available and blocked figures against what stocksync last wrote
    (P − r; the binding keeps on hand only, so r is the reservation stored now) and
    what it would write now (L − r), r being the stored reservation plus the static one."""
    c = row.crm
    assert c is not None
    if row.key in check.owed:
        return  # the write that brings the CRM these figures has not landed yet
    reserved = _held(row, check)
    erp = row.reserved.erp if row.reserved is not None else None
    ledger = on_hand[-1]
    if c.reserved is not None and reserved_edited(c.reserved, on_hand, reserved, check):
        action = _wins(policies.crm_reserved_modified, Action.OVERWRITE)
        kind = FindingKind.CRM_RESERVED_MODIFIED
        yield Finding(kind, row.key, erp, reserved, c.reserved, None, action, c.crm_id)
    if c.available is not None and available_edited(c.available, on_hand, reserved, check):
        action = _wins(policies.crm_available_modified, Action.OVERWRITE)
        pushed = row.pushed - reserved if row.pushed is not None else None
        kind = FindingKind.CRM_AVAILABLE_MODIFIED
        available = ledger - reserved
        yield Finding(kind, row.key, None, available, c.available, pushed, action, c.crm_id)


def _held(row: _Row, figures: FigureCheck | None) -> Decimal:
    """The key's reservation as the push applies it: stored plus static (0 without figures)."""
    stored = row.reserved.stored if row.reserved is not None else Decimal(0)
    return stored + (figures.static(row.key) if figures is not None else Decimal(0))


def _decide(
    row: _Row, policies: Policies, shown: Shown, figures: FigureCheck | None = None
) -> Iterator[Finding]:
    e, l_, c, p = row.erp, row.ledger, row.crm, row.pushed
    crm_qty = c.qty if c is not None else None
    crm_id = c.crm_id if c is not None else None

    def finding(kind: FindingKind, action: Action) -> Finding:
        return Finding(kind, row.key, e, l_, crm_qty, p, action, crm_id)

    erp_qty = e if e is not None else Decimal(0)
    ledger_qty = l_ if l_ is not None else Decimal(0)
    # a key with reserved stock and none on hand is known too: the CRM shows it with
    # available below zero, which is neither an orphan nor nothing to create
    held = _held(row, figures)
    known = e is not None or l_ is not None or held != 0
    if (e is not None or l_ is not None) and erp_qty != ledger_qty:
        yield finding(FindingKind.ERP_LEDGER_DRIFT, _wins(policies.erp_ledger_drift, Action.ADJUST))
    yield from _reserved_drift(row, policies)
    if c is None:
        if erp_qty or ledger_qty or held:
            yield finding(FindingKind.MISSING_IN_CRM, _wins(policies.missing_in_crm, Action.CREATE))
        return
    if not known:
        # a CRM record at zero with no stock anywhere agrees with the ERP (e.g. one we zeroed);
        # all of it: an available or blocked figure left on it still shows stock
        if c.qty or c.available or c.reserved:
            zero = policies.orphan_in_crm == "zero"
            yield finding(FindingKind.ORPHAN_IN_CRM, Action.ZERO if zero else Action.NONE)
        return
    # C is compared with what we last wrote; never written: with the ledger. A CRM
    # already showing the ledger's value needs nothing, whatever the binding says.
    reference = p if p is not None else ledger_qty
    if not shows(c.qty, reference, shown) and not shows(c.qty, ledger_qty, shown):
        yield finding(FindingKind.CRM_MODIFIED, _wins(policies.crm_modified, Action.OVERWRITE))
    if figures is not None:
        yield from _figures(row, (reference, ledger_qty), policies, figures)


def plan(
    erp_on_hand: Iterable[tuple[StockKey, Decimal]],
    ledger_levels: Iterable[tuple[StockKey, Decimal]],
    crm_levels: Iterable[tuple[StockKey, CrmValue]],
    pushed: Iterable[tuple[StockKey, Decimal | None]],
    in_flux: Set[StockKey] = frozenset(),
    policies: Policies = Policies(),
    shown: Shown = exact,
    figures: FigureCheck | None = None,
    reserved: Iterable[tuple[StockKey, ReservedValue]] = (),
) -> list[Finding]:
    """Every difference between E, L, C, P and reserved stock, with the action
    ``policies`` imply. Pure.

    Each input must be sorted by (sku, warehouse) with unique keys (ValueError
    otherwise). A missing ERP figure counts as zero when the ledger knows the key
    (ERPs leave empty stock out of on-hand). A CRM value with ``extras`` is a
    ``duplicate_in_crm``; the key's other findings compare the record kept. A key
    in ``in_flux`` moved while E was taken: it yields one ``in_flux`` finding and
    no on-hand or CRM finding, and is compared next time (its ``reserved_drift``
    is still found: the reserved snapshot does not depend on the movement). The
    CRM is compared at its field's precision (``shows``): a ledger 139.625 and a
    CRM 139.62 (or 139.63) are in sync. ``reserved``: the keys with reserved
    stock in the ERP's snapshot or stored by the last cycle; one whose figures
    differ is a ``reserved_drift``. With ``figures``, a CRM value's available and
    blocked figures are compared too (``sync.reconcile_figures``), each its own
    kind, against the stored reservation of the key plus its static one. Time
    is linear in the number of keys; memory holds only findings.
    """
    findings: list[Finding] = []
    for row in merge(erp_on_hand, ledger_levels, crm_levels, pushed, reserved):
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
            findings.extend(_reserved_drift(row, policies))
            continue
        findings.extend(_duplicates(row, policies))
        findings.extend(_decide(row, policies, shown, figures))
    return findings

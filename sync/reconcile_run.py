"""Three-way reconcile, the I/O half: collect the inputs and plan (``sync.reconcile_inputs``),
then apply and record.

With ``apply``: drift is first re-checked after a window rescan —
a deleted ERP document must become an inactive line (and a ``vanished_in_erp``
conflict), not an adjustment that a later rescan would count twice — then
corrected by ADJUSTMENT movements; reserved figures that drifted are stored
(``sync.reservations.store_reserved``), CRM edits are re-pushed, missing
records created, orphans zeroed if configured, and the Pusher runs.
Every conflict finding becomes a ``conflicts`` row and a log event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import structlog

from sync.errors import PermanentError, TransientError
from sync.ledger import apply_page
from sync.model import LevelValue, Movement, MovementKind, Page, exact_units
from sync.push import PushReport
from sync.reconcile import (
    CONFLICT_KINDS,
    Action,
    Finding,
    FindingKind,
    Policies,
)
from sync.reconcile_inputs import collect
from sync.reservations import store_reserved
from sync.runtime import Pipeline, ledger_options
from sync.settings import mask
from sync.state.store import LEVEL, StateStore, level_ref

log = structlog.get_logger("stocksync.reconcile")

ADJUSTMENT_STREAM = "reconcile"
_PAGE = 1000

#: what a conflict row's ``resolution`` says once its action was applied
RESOLUTIONS = {
    Action.ADJUST: "adjusted",
    Action.STORE: "stored",
    Action.OVERWRITE: "overwritten",
    Action.CREATE: "created",
    Action.ZERO: "zeroed",
    Action.INVALIDATE: "invalidated",
}


@dataclass
class ReconcileResult:
    """What a reconcile saw and did. ``remaining`` drives the exit code."""

    run_id: str
    applied: bool
    findings: list[Finding] = field(default_factory=list)
    #: findings whose action was carried out (only with ``apply``)
    done: list[Finding] = field(default_factory=list)
    #: drift settled by the window rescan (deleted ERP documents) instead of an adjustment
    vanished: list[str] = field(default_factory=list)
    push: PushReport = field(default_factory=PushReport)
    keys: int = 0

    @property
    def conflicts(self) -> list[Finding]:
        return [f for f in self.findings if f.is_conflict]

    @property
    def remaining(self) -> int:
        """Differences still there: everything in a dry run; after apply, what was not
        fixed, plus the other rows the push could not write (each counted once)."""
        if not self.applied:
            return len(self.conflicts)
        fixed = {(f.kind, f.key) for f in self.done}
        left = [f for f in self.conflicts if (f.kind, f.key) not in fixed]
        counted = {(LEVEL, level_ref(f.key)) for f in left}
        return len(left) + len(self.push.unfinished - counted)


def policies_of(pipeline: Pipeline) -> Policies:
    r = pipeline.settings.reconcile
    return Policies(
        r.erp_ledger_drift,
        r.crm_modified,
        r.missing_in_crm,
        r.orphan_in_crm,
        r.duplicate_in_crm,
        r.reserved_drift,
        r.crm_reserved_modified,
        r.crm_available_modified,
    )


def _chunks(items: Sequence[Finding]) -> Iterator[Sequence[Finding]]:
    for start in range(0, len(items), _PAGE):
        yield items[start : start + _PAGE]


def _settle_drift(pipeline: Pipeline, drift: list[Finding], result: ReconcileResult) -> None:
    """Rescan for deletions, then write ADJUSTMENT movements for what is still off."""
    store, now = pipeline.store, pipeline.now()
    report = pipeline.rescan(result.run_id)
    levels = store.levels(pipeline.name) if report.vanished else {}
    seq = int(store.meta(pipeline.name, "reconcile_seq") or 0) + 1
    store.set_meta(pipeline.name, "reconcile_seq", str(seq))
    result.vanished = report.vanished
    run_id = result.run_id
    precision = ledger_options(pipeline.settings).precision
    for chunk in _chunks(drift):
        movements = []
        for f in chunk:
            erp = f.erp if f.erp is not None else Decimal(0)
            ledger = levels.get(f.key, Decimal(0)) if report.vanished else (f.ledger or Decimal(0))
            if erp == ledger:
                result.done.append(f)
                continue  # the rescan settled it: the ERP document was deleted
            if exact_units(erp - ledger, precision) is not None:
                result.done.append(f)
            # else the ledger cannot hold the correction exactly: apply_page quarantines it
            # (a record_error naming pipelines[].precision) and the drift is not fixed
            movements.append(
                Movement(
                    key=f"reconcile:{pipeline.name}:{f.key.sku}:{f.key.warehouse}:{seq}",
                    kind=MovementKind.ADJUSTMENT,
                    sku=f.key.sku,
                    warehouse=f.key.warehouse,
                    qty=erp - ledger,
                    occurred_at=now,
                    source_updated_at=now,
                    doc_no=f"reconcile {run_id[:8]}",
                )
            )
        page = Page(ADJUSTMENT_STREAM, movements, None)
        apply_page(
            store,
            pipeline.name,
            page,
            now=now,
            options=ledger_options(pipeline.settings),
            run_id=run_id,
            reason="reconcile",
        )


def _force_push(store: StateStore, pipeline: str, findings: list[Finding], now: datetime) -> None:
    """Make the pusher write these keys: forget the pushed hash (or the dead binding), enqueue.

    Once per key (a key may have several findings, one per figure). The on hand last
    pushed stays as the binding has it: a finding's ``pushed`` is in its own figure.
    """
    by_ref = {level_ref(f.key): f for f in findings}
    # read before the transaction: a second connection must not run inside it
    bindings = {ref: store.binding(pipeline, LEVEL, ref) for ref in by_ref}
    with store.transaction() as tx:
        for ref, f in by_ref.items():
            binding = bindings[ref]
            if f.kind is FindingKind.MISSING_IN_CRM:
                tx.unbind(pipeline, LEVEL, ref)
            elif f.crm_id is not None:
                pushed = binding.pushed_qty if binding is not None else None
                tx.bind(
                    pipeline, LEVEL, ref, f.crm_id, pushed_hash=None, pushed_qty=pushed, now=None
                )
        tx.enqueue(pipeline, LEVEL, list(by_ref), now)


def _store_reserved(pipeline: Pipeline, drift: list[Finding]) -> list[Finding]:
    """Store the ERP's reserved figure of each ``reserved_drift`` and queue its key; a
    figure finer than the pipeline's precision is refused (``reserved_inexact``), not done."""
    figures = {f.key: f.erp for f in drift if f.erp is not None}
    precision = ledger_options(pipeline.settings).precision
    stored = store_reserved(
        pipeline.store, pipeline.name, figures, now=pipeline.now(), precision=precision
    )
    return [f for f in drift if f.key in stored]


def _zero_orphans(pipeline: Pipeline, orphans: list[Finding]) -> list[Finding]:
    """Set each orphan to zero; one that fails stays not applied (and is reported)."""
    done = []
    for f in orphans:
        if f.crm_id is None:
            continue
        try:
            pipeline.sink.update_level(f.crm_id, f.key, LevelValue(Decimal(0), Decimal(0)))
        except (TransientError, PermanentError) as exc:
            _write_failed(pipeline, f, f.crm_id, exc)
            continue
        done.append(f)
    return done


def _write_failed(pipeline: Pipeline, f: Finding, crm_id: str, exc: Exception) -> None:
    """A reconcile write that failed: logged (masked); the finding stays not applied."""
    log.warning(
        "reconcile_write_failed",
        pipeline=pipeline.name,
        kind=f.kind.value,
        crm_id=crm_id,
        error=mask(str(exc)),
    )


def _invalidate_extras(pipeline: Pipeline, duplicates: list[Finding]) -> list[Finding]:
    """Invalidate each duplicate's extra records, keeping ``crm_id`` (the bound one).

    A key whose binding points to none of its live records is rebound to the one
    kept and queued, so the next push writes there. A key whose extras could not
    all be invalidated stays not applied (and is reported).
    """
    done = []
    for f in duplicates:
        try:
            for extra in f.extras:
                pipeline.sink.invalidate_level(extra.crm_id, f.key)
        except (TransientError, PermanentError) as exc:
            _write_failed(pipeline, f, extra.crm_id, exc)
            continue
        done.append(f)
    rebind = [f for f in done if f.crm_id and _bound_elsewhere(pipeline, f)]
    if rebind:
        _force_push(pipeline.store, pipeline.name, rebind, pipeline.now())
    return done


def _bound_elsewhere(pipeline: Pipeline, f: Finding) -> bool:
    binding = pipeline.store.binding(pipeline.name, LEVEL, level_ref(f.key))
    return binding is not None and binding.crm_id != f.crm_id


def _pushed(pipeline: Pipeline, findings: list[Finding]) -> list[Finding]:
    """The findings whose level the push wrote: their outbox row is gone. A row that
    died, was blocked, or waits for a retry leaves its finding not applied."""
    refs = [level_ref(f.key) for f in findings]
    waiting = pipeline.store.outbox_states(pipeline.name, LEVEL, refs)
    return [f for f, ref in zip(findings, refs, strict=True) if ref not in waiting]


def apply(pipeline: Pipeline, result: ReconcileResult) -> None:
    """Carry out every finding whose action is not NONE, then push."""
    by_action: dict[Action, list[Finding]] = {a: [] for a in Action}
    for f in result.findings:
        by_action[f.action].append(f)
    if by_action[Action.ADJUST]:
        _settle_drift(pipeline, by_action[Action.ADJUST], result)
    if by_action[Action.STORE]:
        result.done += _store_reserved(pipeline, by_action[Action.STORE])
    repush = by_action[Action.OVERWRITE] + by_action[Action.CREATE]
    if repush:
        _force_push(pipeline.store, pipeline.name, repush, pipeline.now())
    result.done += _zero_orphans(pipeline, by_action[Action.ZERO])
    result.done += _invalidate_extras(pipeline, by_action[Action.INVALIDATE])
    result.push = pipeline.pusher().run()
    result.done += _pushed(pipeline, repush)


def record(pipeline: Pipeline, result: ReconcileResult) -> None:
    """A conflicts row and a log event per conflict finding; close rows now in sync."""
    store, now = pipeline.store, pipeline.now()
    done = {(f.kind, f.key) for f in result.done}
    seen: set[tuple[str, str]] = set()
    flux = {level_ref(f.key) for f in result.findings if not f.is_conflict}
    # read before the transaction: a second connection must not run inside it
    settled = [
        (row.kind, row.ref)
        for kind in CONFLICT_KINDS
        for row in store.conflicts(
            pipeline=pipeline.name, kind=kind.value, open_only=True, limit=1_000_000
        )
    ]
    with store.transaction() as tx:
        for f in result.conflicts:
            ref = level_ref(f.key)
            seen.add((f.kind.value, ref))
            resolution = RESOLUTIONS.get(f.action) if (f.kind, f.key) in done else None
            tx.record_conflict(
                kind=f.kind.value,
                pipeline=pipeline.name,
                ref=ref,
                now=now,
                detail=_detail(f, result.run_id),
                erp=f.erp,
                ledger=f.ledger,
                crm=f.crm,
                pushed=f.pushed,
                resolution=resolution,
            )
            log.warning(
                f.kind.value,
                pipeline=pipeline.name,
                sku=f.key.sku,
                warehouse=f.key.warehouse,
                erp=_s(f.erp),
                ledger=_s(f.ledger),
                crm=_s(f.crm),
                pushed=_s(f.pushed),
                action=f.action.value,
                applied=resolution is not None,
                run_id=result.run_id,
                **({"duplicates": f.duplicates_json()} if f.extras else {}),
            )
        for kind, ref in settled:
            if (kind, ref) not in seen and ref not in flux:
                tx.resolve_conflicts(
                    pipeline.name, kind, ref, now, "in_sync", "in sync at reconcile"
                )


def _detail(f: Finding, run_id: str) -> dict[str, object]:
    detail: dict[str, object] = {"action": f.action.value, "crm_id": f.crm_id, "run_id": run_id}
    if f.extras:
        detail["duplicates"] = f.duplicates_json()
    return detail


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def reconcile(
    pipeline: Pipeline, *, apply_changes: bool = False, policies: Policies | None = None
) -> ReconcileResult:
    """One three-way reconcile of ``pipeline``; changes ERP-side nothing, CRM only if applying.

    A dry run still catches the ledger up (pull, and the first-run baseline) and
    records/refreshes conflict rows; it writes no adjustment and pushes nothing.
    """
    run_id = str(uuid.uuid4())
    store = pipeline.store
    row = store.start_run(run_id, pipeline.name, "reconcile", pipeline.now())
    result = ReconcileResult(run_id, apply_changes)
    try:
        result.findings, result.keys = collect(pipeline, run_id, policies or policies_of(pipeline))
        if apply_changes:
            apply(pipeline, result)
        record(pipeline, result)
    except Exception as exc:
        store.finish_run(row, pipeline.now(), status="error", error=f"{type(exc).__name__}: {exc}")
        log.error("reconcile_failed", pipeline=pipeline.name, run_id=run_id, error=str(exc))
        raise
    store.finish_run(
        row,
        pipeline.now(),
        status="ok",
        applied=len(result.done),
        pushed=result.push.pushed,
        failed=result.push.failed,
    )
    log.info(
        "reconcile_done",
        pipeline=pipeline.name,
        run_id=run_id,
        keys=result.keys,
        findings=len(result.conflicts),
        in_flux=len(result.findings) - len(result.conflicts),
        applied=len(result.done),
        remaining=result.remaining,
        dry_run=not apply_changes,
    )
    return result


def run_scheduled(pipeline: Pipeline) -> ReconcileResult:
    """The daemon's cron job: apply semantics with the configured policies."""
    return reconcile(pipeline, apply_changes=True)

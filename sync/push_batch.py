"""Batch pushes: many level or movement rows in one upsert call (architecture §5.1).

A sink that upserts by an external id (``BatchLevelSink``, ``BatchMovementSink``;
Salesforce sObject Collections: 200 records a call) gets a batch of the rows whose
value differs from the last one pushed; each item's outcome settles its own row
exactly as a single-record write would (``Pusher.settle_error``), and an error of the
whole call settles every row of it. No look-up is ever needed: the external id holds
the stock key, so sending a batch again — after a lost answer, a crash, a retry —
writes the same records again instead of creating others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from sync.binding import level_hash, movement_hash
from sync.errors import BudgetExhaustedError, PermanentError, StockSyncError, TransientError
from sync.model import LevelValue, Movement, StockKey
from sync.ports import (
    BatchLevelSink,
    BatchMovementSink,
    BatchOutcome,
    CrmSink,
    api_usage,
)
from sync.settings import mask
from sync.state.store import LEVEL, MOVEMENT, UNCERTAIN, OutboxRow, StateStore, parse_level_ref


class PushReport(Protocol):
    """What a batch adds to the run's report (``sync.push.PushReport``)."""

    created: int
    updated: int


class Pusher(Protocol):
    """The push engine as a batch uses it (``sync.push.Pusher``: values, settling a row)."""

    store: StateStore
    sink: CrmSink
    pipeline: str

    def value_of(self, key: StockKey) -> LevelValue: ...

    def settle_error(self, row: OutboxRow, exc: StockSyncError, report: Any) -> None: ...

    def finish(
        self,
        row: OutboxRow,
        report: Any,
        target: str,
        crm_id: str | None,
        digest: str | None,
        shown: LevelValue | None,
        outcome: str,
    ) -> None: ...


log = structlog.get_logger("stocksync.push")

#: pipeline_meta entry: the CRM's call budget as last seen, JSON (``record_usage``)
USAGE_META = "crm_api_usage"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Item:
    """One row on its way into a batch: what to send and what to remember once written
    (the digest of the value, and the level as the CRM shows it)."""

    row: OutboxRow
    digest: str
    shown: LevelValue | None


@dataclass(frozen=True, slots=True)
class _LevelItem(_Item):
    key: StockKey
    value: LevelValue


@dataclass(frozen=True, slots=True)
class _MovementItem(_Item):
    movement: Movement


ItemT = TypeVar("ItemT", bound=_Item)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (at least 1)."""
    size = max(1, size)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def push_batches(
    pusher: Pusher,
    rows: Sequence[OutboxRow],
    report: PushReport,
    on_row: Callable[[Any], None] | None,
) -> list[OutboxRow]:
    """Push the level and movement rows the sink takes in batches; return the others
    (to be pushed one at a time). Raises BudgetExhaustedError: the rows not settled
    yet stay as they are."""
    sink = pusher.sink
    single: list[OutboxRow] = []
    level_items: list[_LevelItem] = []
    movement_items: list[_MovementItem] = []
    down: list[TransientError] = []  # the CRM failed to show a value: not asked again
    for row in rows:
        settled = False
        if row.target == LEVEL and isinstance(sink, BatchLevelSink):
            level = _level_item(pusher, row, report, down)
            settled = level is None
            level_items.extend([level] if level else [])
        elif row.target == MOVEMENT and isinstance(sink, BatchMovementSink):
            movement = _movement_item(pusher, row, report)
            settled = movement is None
            movement_items.extend([movement] if movement else [])
        else:
            single.append(row)
        if settled and on_row is not None:
            on_row(report)
    if level_items and isinstance(sink, BatchLevelSink):
        batch_levels = sink

        def write_levels(part: Sequence[_LevelItem]) -> Sequence[BatchOutcome]:
            return batch_levels.upsert_levels([(i.key, i.value) for i in part])

        _send(pusher, LEVEL, level_items, sink.batch_size, write_levels, report, on_row)
    if movement_items and isinstance(sink, BatchMovementSink):
        batch_movements = sink

        def write_movements(part: Sequence[_MovementItem]) -> Sequence[BatchOutcome]:
            return batch_movements.upsert_movements([i.movement for i in part])

        _send(pusher, MOVEMENT, movement_items, sink.batch_size, write_movements, report, on_row)
    return single


def _level_item(
    pusher: Pusher, row: OutboxRow, report: PushReport, down: list[TransientError]
) -> _LevelItem | None:
    """The row's batch item, or None when it is settled already: unchanged since the
    last push (and not uncertain), or failed while its value was being worked out.

    ``down``: once the sink failed to show a value for a passing reason (Salesforce: the
    describe giving the fields' scale, after its own retries), the rows after it settle
    with that error instead of each asking again, as for a failed batch call."""
    key = parse_level_ref(row.ref)
    try:
        value = pusher.value_of(key)
        if down:
            raise down[0]
        try:
            shown = pusher.sink.shown_level(value)
        except BudgetExhaustedError:
            raise
        except TransientError as exc:
            down.append(exc)
            raise
    except BudgetExhaustedError:
        raise
    except StockSyncError as exc:
        pusher.settle_error(row, exc, report)
        return None
    digest = level_hash(shown)
    bound = pusher.store.binding(pusher.pipeline, LEVEL, row.ref)
    if bound is not None and bound.pushed_hash == digest and row.state != UNCERTAIN:
        pusher.finish(row, report, LEVEL, bound.crm_id, digest, shown, "skipped")
        return None
    return _LevelItem(row, digest, shown, key, value)


def _movement_item(pusher: Pusher, row: OutboxRow, report: PushReport) -> _MovementItem | None:
    stored = pusher.store.movement(pusher.pipeline, row.ref)
    if stored is None:
        pusher.finish(row, report, MOVEMENT, None, None, None, "skipped")
        return None
    movement = stored.as_movement()
    digest = movement_hash(movement)
    bound = pusher.store.binding(pusher.pipeline, MOVEMENT, row.ref)
    if bound is not None and bound.pushed_hash == digest and row.state != UNCERTAIN:
        pusher.finish(row, report, MOVEMENT, bound.crm_id, digest, None, "skipped")
        return None
    return _MovementItem(row, digest, None, movement)


def _send(
    pusher: Pusher,
    target: str,
    items: Sequence[ItemT],
    size: int,
    write: Callable[[Sequence[ItemT]], Sequence[BatchOutcome]],
    report: PushReport,
    on_row: Callable[[Any], None] | None,
) -> None:
    """Write ``items`` ``size`` at a time and settle each row by its outcome."""
    for part in chunks(items, size):
        try:
            outcomes = list(write(part))
            if len(outcomes) != len(part):
                raise PermanentError(
                    f"{pusher.sink.name}: a batch of {len(part)} answered {len(outcomes)} result(s)"
                )
        except BudgetExhaustedError:
            raise
        except StockSyncError as exc:
            log.warning(
                "push_batch_failed",
                pipeline=pusher.pipeline,
                target=target,
                rows=len(part),
                error=mask(str(exc)),
                error_type=type(exc).__name__,
            )
            outcomes = [BatchOutcome(error=exc)] * len(part)
        for item, outcome in zip(part, outcomes, strict=True):
            _settle(pusher, target, item, outcome, report)
            if on_row is not None:
                on_row(report)


def _settle(
    pusher: Pusher, target: str, item: _Item, outcome: BatchOutcome, report: PushReport
) -> None:
    if outcome.error is not None:
        pusher.settle_error(item.row, outcome.error, report)
        return
    if outcome.crm_id is None:
        error = PermanentError(f"{pusher.sink.name}: a batch item written without a CRM id")
        pusher.settle_error(item.row, error, report)
        return
    if outcome.created:
        report.created += 1
    else:
        report.updated += 1
    outcome_name = "created" if outcome.created else "updated"
    pusher.finish(item.row, report, target, outcome.crm_id, item.digest, item.shown, outcome_name)


def record_usage(store: StateStore, sink: CrmSink, pipeline: str, paused: str | None) -> None:
    """Keep the sink's call budget as last seen (and why pushing paused, if it did) in the
    state database, where ``status`` and ``/metrics`` read it. Never raises: a figure
    for the operator must not fail the push."""
    try:
        usage = api_usage(sink)
        if usage is None:
            return
        figures = {
            "used": usage.used,
            "limit": usage.limit,
            "ceiling": usage.ceiling,
            "seen_at": usage.seen_at.isoformat(timespec="seconds"),
            "paused": paused,
        }
        store.set_meta(pipeline, USAGE_META, json.dumps(figures))
    except Exception as exc:  # the push's outcome is recorded already
        log.warning("api_usage_not_recorded", pipeline=pipeline, error=mask(str(exc)))


def recorded_usage(store: StateStore) -> dict[str, dict[str, Any]]:
    """pipeline → its CRM call budget as the last push saw it (``record_usage``): used,
    limit, ceiling, seen_at (ISO 8601), paused (why, or None)."""
    found: dict[str, dict[str, Any]] = {}
    for pipeline, text in store.meta_all(USAGE_META).items():
        try:
            figures = json.loads(text)
        except ValueError:
            continue
        if isinstance(figures, dict):
            found[pipeline] = figures
    return found

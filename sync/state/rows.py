"""Typed rows that cross the state store's boundary, and the outbox vocabulary.

Nothing here runs SQL: these are the values callers get back (dataclasses,
never SQLAlchemy rows) and the converters from result rows to them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy.engine import RowMapping

from sync.forecast.model import ReorderPlan
from sync.model import Cursor, Movement, MovementKind, StockKey
from sync.state.schema import from_units, to_units

LEVEL = "level"
MOVEMENT = "movement"
#: a safety-stock alert owed to the webhook (ref: its ``alert_id``)
ALERT = "alert"

#: outbox states
PENDING = "pending"
UNCERTAIN = "uncertain"
BLOCKED = "blocked"
DEAD = "dead"
OUTBOX_STATES = (PENDING, UNCERTAIN, BLOCKED, DEAD)

REF_SEPARATOR = "\x1f"


def level_ref(key: StockKey) -> str:
    """The outbox/binding reference of a stock key (unit separator never occurs in codes)."""
    return f"{key.sku}{REF_SEPARATOR}{key.warehouse}"


def parse_level_ref(ref: str) -> StockKey:
    sku, _, warehouse = ref.partition(REF_SEPARATOR)
    return StockKey(sku, warehouse)


def display_ref(ref: str) -> str:
    return ref.replace(REF_SEPARATOR, "@")


@dataclass(frozen=True, slots=True)
class StoredMovement:
    key: str
    stream: str
    kind: str
    sku: str
    warehouse: str
    qty: Decimal
    occurred_at: datetime
    source_updated_at: datetime
    doc_no: str
    active: bool
    version: int
    #: why this version was written (e.g. "reconcile", "vanished"); None for plain pulls
    reason: str | None = None
    run_id: str | None = None

    @property
    def effective_qty(self) -> Decimal:
        return self.qty if self.active else Decimal(0)

    def as_movement(self, *, active: bool | None = None) -> Movement:
        """The domain value of this line (optionally with another ``active`` flag)."""
        return Movement(
            key=self.key,
            kind=MovementKind(self.kind),
            sku=self.sku,
            warehouse=self.warehouse,
            qty=self.qty,
            occurred_at=self.occurred_at,
            source_updated_at=self.source_updated_at,
            doc_no=self.doc_no,
            active=self.active if active is None else active,
        )


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    pipeline: str
    target: str
    ref: str
    state: str
    generation: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Binding:
    crm_id: str
    pushed_hash: str | None
    pushed_qty: Decimal | None
    pushed_at: datetime | None


@dataclass(frozen=True, slots=True)
class PushLogEntry:
    """One push outcome of one outbox row (``push_log``): what was written, and the answer.

    ``outcome`` is ``created``, ``updated``, ``skipped`` (equal to the last pushed value),
    ``dropped`` (nothing to show for a code the CRM lacks), ``retrying``, ``uncertain``,
    ``dead`` or ``blocked``; ``qty``/``available`` are the figures as the CRM shows them
    (None for a failure or a movement); ``error`` is masked.
    """

    target: str
    ref: str
    at: datetime
    outcome: str
    crm_id: str | None = None
    qty: Decimal | None = None
    available: Decimal | None = None
    attempts: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ConflictRow:
    id: int
    kind: str
    pipeline: str
    ref: str
    erp_qty: Decimal | None
    ledger_qty: Decimal | None
    crm_qty: Decimal | None
    pushed_qty: Decimal | None
    detail: dict[str, Any]
    detected_at: datetime
    last_seen_at: datetime
    occurrences: int
    resolution: str | None
    resolved_at: datetime | None
    note: str | None


@dataclass(frozen=True, slots=True)
class AlertState:
    """Whether a stock key was below its safety stock when last checked (alert de-duplication)."""

    low: bool
    threshold: Decimal | None
    qty: Decimal
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class AlertEventRow:
    """A crossing the webhook must receive: ``payload`` is the JSON body as sent (it carries
    ``alert_id``); ``delivered_at`` is None until the webhook answered 2xx."""

    alert_id: str
    pipeline: str
    event: str
    sku: str
    warehouse: str
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    run_id: str
    pipeline: str
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    pulled: int
    applied: int
    pushed: int
    failed: int
    error: str | None
    #: the replica that ran it (``sync.service.leases``); None for a one-off command
    runner: str | None = None


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    """A daemon sharing the state database: its heartbeat and the leases it holds."""

    replica: str
    started_at: datetime
    heartbeat_at: datetime
    #: pipelines whose lease it holds and that have not expired (server clock)
    pipelines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CursorRow:
    pipeline: str
    stream: str
    cursor: Cursor
    advanced_at: datetime


def opt_units(value: Decimal | None) -> int | None:
    return None if value is None else to_units(value)


def opt_qty(units: int | None) -> Decimal | None:
    return None if units is None else from_units(units)


class IncomingLine(NamedTuple):
    """A movement from a page, converted once into what the ledger stores and compares."""

    key: str
    kind: str
    sku: str
    warehouse: str
    qty_units: int
    occurred_us: int
    updated_us: int
    doc_no: str
    active: bool


class LedgerLine(NamedTuple):
    """A stored movement as the ledger's hot path sees it: raw units and microseconds."""

    key: str
    stream: str
    kind: str
    sku: str
    warehouse: str
    qty_units: int
    occurred_us: int
    updated_us: int
    doc_no: str
    active: bool
    version: int
    run_id: str | None
    reason: str | None

    @property
    def effective_units(self) -> int:
        return self.qty_units if self.active else 0


def stored_movement(r: RowMapping) -> StoredMovement:
    return StoredMovement(
        key=r["key"],
        stream=r.get("stream", ""),  # archived versions (movement_versions) keep no stream
        kind=r["kind"],
        sku=r["sku"],
        warehouse=r["warehouse"],
        qty=from_units(r["qty"]),
        occurred_at=r["occurred_at"],
        source_updated_at=r["source_updated_at"],
        doc_no=r["doc_no"],
        active=bool(r["active"]),
        version=r["version"],
        reason=r["reason"],
        run_id=r["run_id"],
    )


def conflict_row(r: RowMapping) -> ConflictRow:
    return ConflictRow(
        id=r["id"],
        kind=r["kind"],
        pipeline=r["pipeline"],
        ref=r["ref"],
        erp_qty=opt_qty(r["erp_qty"]),
        ledger_qty=opt_qty(r["ledger_qty"]),
        crm_qty=opt_qty(r["crm_qty"]),
        pushed_qty=opt_qty(r["pushed_qty"]),
        detail=json.loads(r["detail"] or "{}"),
        detected_at=r["detected_at"],
        last_seen_at=r["last_seen_at"],
        occurrences=r["occurrences"],
        resolution=r["resolution"],
        resolved_at=r["resolved_at"],
        note=r["note"],
    )


def outbox_row(r: RowMapping) -> OutboxRow:
    return OutboxRow(
        id=r["id"],
        pipeline=r["pipeline"],
        target=r["target"],
        ref=r["ref"],
        state=r["state"],
        generation=r["generation"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
    )


def alert_event_row(r: RowMapping) -> AlertEventRow:
    return AlertEventRow(
        alert_id=r["alert_id"],
        pipeline=r["pipeline"],
        event=r["event"],
        sku=r["sku"],
        warehouse=r["warehouse"],
        payload=json.loads(r["payload"]),
        created_at=r["created_at"],
        delivered_at=r["delivered_at"],
    )


def run_row(r: RowMapping) -> RunRow:
    return RunRow(**{k: r[k] for k in RunRow.__slots__})


#: the columns of ``reorder_plans`` a ReorderPlan fills (all its fields but the key)
PLAN_FIELDS = tuple(f.name for f in fields(ReorderPlan) if f.name != "key")


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """One key's reorder plan as the nightly job stored it."""

    sku: str
    warehouse: str
    model: str
    computed_at: datetime
    plan: ReorderPlan

    def columns(self) -> dict[str, Any]:
        """The row's columns but the key (``reorder_plans``)."""
        values = asdict(self.plan)
        return {
            "model": self.model,
            "computed_at": self.computed_at,
            **{name: values[name] for name in PLAN_FIELDS},
        }

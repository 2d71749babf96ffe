"""Safety-stock alerts (architecture §7): fire once when a level crosses below, once on recovery.

The compared figure is ``alerts.basis``: on hand, or available = on hand −
reserved (ERP reserved + ``push.reservations``; issue 15: stock that is all
reserved is out of stock for sales). ``threshold_of`` and ``detect`` are pure;
``check_alerts`` reads the keys that may have crossed (``sync.alert_scope``:
levels and reserved figures written since the last check, low keys, changed
thresholds; every key only when the settings changed) and their persisted
``alert_states``, detects crossings and notifies: a structured log event always
and, with a webhook configured, a stored alert event plus an outbox row (target
``alert``) written in the transaction that persists the new states. The push
delivers it (``sync.alert_push``) with the outbox's backoff, attempts and dead
rows: a failing webhook never holds a cycle, and an alert is not lost to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import structlog

from sync.alert_scope import figures, scope
from sync.config import AlertSettings, Basis, PipelineBase
from sync.model import LevelValue, StockKey, exact_units
from sync.ports import CrmSink
from sync.state.store import ALERT, AlertEventRow, AlertState, StateStore

log = structlog.get_logger("stocksync.alerts")

Transition = Literal["low", "recovered"]


class AlertedPipeline(Protocol):
    """What the alert check needs of a pipeline (``sync.runtime.Pipeline`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def settings(self) -> PipelineBase: ...
    @property
    def sink(self) -> CrmSink: ...
    @property
    def store(self) -> StateStore: ...
    @property
    def now(self) -> Callable[[], datetime]: ...


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A crossing: ``low`` when qty went below threshold, ``recovered`` when back at/above it.

    ``qty`` is the compared figure: ``value.real`` (on hand) or ``value.available``
    as ``basis`` says. ``alert_id`` (a UUID) names this crossing in the log event
    and the webhook body, every delivery of it alike.
    """

    pipeline: str
    key: StockKey
    transition: Transition
    value: LevelValue
    threshold: Decimal
    at: datetime
    basis: Basis = "on_hand"
    alert_id: str = field(default_factory=lambda: str(uuid.uuid4()), compare=False)

    @property
    def qty(self) -> Decimal:
        return compared(self.value, self.basis)

    @property
    def name(self) -> str:
        return "stock_low" if self.transition == "low" else "stock_recovered"

    def fields(self) -> dict[str, str]:
        """The figures of the event (payload and log event): basis, qty, on hand, reserved."""
        return {
            "basis": self.basis,
            "qty": str(self.qty),
            "threshold": str(self.threshold),
            "on_hand": str(self.value.real),
            "reserved": str(self.value.reserved),
            "available": str(self.value.available),
        }

    def payload(self) -> dict[str, Any]:
        """The webhook body (documented in the README)."""
        return {
            "alert_id": self.alert_id,
            "event": self.name,
            "pipeline": self.pipeline,
            "sku": self.key.sku,
            "warehouse": self.key.warehouse,
            **self.fields(),
            "at": self.at.isoformat(),
        }

    def stored(self) -> AlertEventRow:
        """The row that keeps this crossing until the webhook accepted it."""
        return AlertEventRow(
            self.alert_id,
            self.pipeline,
            self.name,
            self.key.sku,
            self.key.warehouse,
            self.payload(),
            self.at,
        )


def compared(value: LevelValue, basis: Basis) -> Decimal:
    """The figure alerts compare with the threshold: on hand or available."""
    return value.real if basis == "on_hand" else value.available


def threshold_of(
    key: StockKey, settings: AlertSettings, crm: Mapping[StockKey, Decimal] | None = None
) -> Decimal | None:
    """Safety stock for ``key``: SKU@WH, then SKU, then the CRM's value, then the default."""
    for name in (str(key), key.sku):
        if name in settings.thresholds:
            return settings.thresholds[name]
    if crm is not None and key in crm:
        return crm[key]
    return settings.default_threshold


def crm_thresholds(sink: object) -> dict[StockKey, Decimal] | None:
    """The CRM's ``safety_stock`` per key, if the sink offers ``safety_stocks()``; else None."""
    reader = getattr(sink, "safety_stocks", None)
    if not callable(reader):
        return None
    thresholds: dict[StockKey, Decimal] = {}
    for key, qty in dict(reader()).items():
        if exact_units(qty) is None:
            # the alert state keeps micro-units: a finer threshold is ignored, never rounded
            log.warning("threshold_ignored", key=str(key), threshold=str(qty), reason=_FINE)
            continue
        thresholds[key] = qty
    return thresholds


_FINE = "more than 6 decimal places (the ledger keeps micro-units)"


def detect(
    pipeline: str,
    values: Iterable[tuple[StockKey, LevelValue]],
    threshold: Callable[[StockKey], Decimal | None],
    states: Mapping[StockKey, AlertState],
    now: datetime,
    basis: Basis = "on_hand",
) -> tuple[list[AlertEvent], dict[StockKey, AlertState]]:
    """Crossings since the last check and the states to persist. Pure.

    Compares ``compared(value, basis)`` with the key's threshold: below it is
    low (available below zero, reservations over stock, is low too). A key seen
    for the first time fires only if it is already low. Staying on the same side
    fires nothing; a key whose threshold was removed recovers.
    """
    events: list[AlertEvent] = []
    changed: dict[StockKey, AlertState] = {}
    for key, value in values:
        qty, limit, previous = compared(value, basis), threshold(key), states.get(key)
        if limit is None:
            if previous is not None and previous.low:
                changed[key] = AlertState(False, None, qty, now)
                events.append(
                    AlertEvent(
                        pipeline, key, "recovered", value, previous.threshold or qty, now, basis
                    )
                )
            continue
        low = qty < limit
        was_low = previous.low if previous is not None else False
        crossed = previous is None or low != was_low
        if crossed or (previous is not None and previous.threshold != limit):
            since = now if crossed or previous is None else previous.changed_at
            changed[key] = AlertState(low, limit, qty, since)
        if low != was_low:
            transition: Transition = "low" if low else "recovered"
            events.append(AlertEvent(pipeline, key, transition, value, limit, now, basis))
    return events, changed


def check_alerts(pipeline: AlertedPipeline) -> list[AlertEvent]:
    """Detect safety-stock crossings for ``pipeline``; log them and queue their webhooks.

    Call before the push, which delivers what this queued. Never raises: an
    alert problem is logged and the sync goes on.
    """
    try:
        return _check(pipeline)
    except Exception as exc:
        log.error("alerts_failed", pipeline=pipeline.name, error=f"{type(exc).__name__}: {exc}")
        return []


def _check(pipeline: AlertedPipeline) -> list[AlertEvent]:
    settings = pipeline.settings.alerts
    crm = crm_thresholds(pipeline.sink) if settings.from_crm else None
    if settings.default_threshold is None and not settings.thresholds and not crm:
        return []
    store, now = pipeline.store, pipeline.now()
    static = pipeline.settings.push.reservations

    def threshold(key: StockKey) -> Decimal | None:
        return threshold_of(key, settings, crm)

    keys = scope(
        store, pipeline.name, settings, static=static, crm=crm, threshold=threshold, now=now
    )
    values = figures(store, pipeline.name, keys.on_hand, static)
    events, changed = detect(pipeline.name, values, threshold, keys.states, now, settings.basis)
    owed = [event.stored() for event in events] if settings.webhook is not None else []
    with store.transaction() as tx:
        tx.put_alert_states(pipeline.name, changed)
        # the state change and the delivery it owes commit together, or neither does
        tx.add_alert_events(owed)
        tx.enqueue(pipeline.name, ALERT, [row.alert_id for row in owed], now)
        for name, value in keys.meta.items():
            tx.set_meta(pipeline.name, name, value)
    for event in events:
        log.warning(
            event.name,
            pipeline=event.pipeline,
            alert_id=event.alert_id,
            sku=event.key.sku,
            warehouse=event.key.warehouse,
            **event.fields(),
        )
    return events


#: the columns of ``stocksync alerts list`` (the CSV header when no key is low)
LOW_KEY_COLUMNS = ("pipeline", "sku", "warehouse", "qty", "threshold", "since")


def low_keys(pipeline: str, states: Mapping[StockKey, AlertState]) -> list[dict[str, Any]]:
    """Rows for ``stocksync alerts list``: keys currently below their safety stock."""
    return [
        {
            "pipeline": pipeline,
            "sku": key.sku,
            "warehouse": key.warehouse,
            "qty": str(state.qty),
            "threshold": str(state.threshold) if state.threshold is not None else None,
            "since": state.changed_at.isoformat(timespec="seconds"),
        }
        for key, state in sorted(states.items())
        if state.low
    ]

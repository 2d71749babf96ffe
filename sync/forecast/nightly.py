"""The daemon's nightly reorder plan (``forecast.nightly_cron``) and the ``stockout_projected``
alert (issue 20; architecture §7.3).

Forecasts every key, stores the plans (``reorder_plans``, replacing the last
night's) and fires ``stockout_projected`` for a key whose projected stock-out
falls within the lead time — once, when it enters that state, like the
safety-stock alerts (§7): a key already projected out last night fires nothing
again; one that recovered and is projected out again fires anew. The alert goes
to the log always and, with ``alerts.webhook`` configured, through the outbox in
the transaction that stores the plans (§7.1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from sync.config import PipelineBase
from sync.forecast.model import ReorderPlan
from sync.model import StockKey, parse_stock_key
from sync.state.store import ALERT, AlertEventRow, StateStore, StoredPlan

log = structlog.get_logger("stocksync.forecast")

STOCKOUT_PROJECTED = "stockout_projected"


class PlannedPipeline(Protocol):
    """What the nightly plan needs of a pipeline (``sync.runtime.Pipeline`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def settings(self) -> PipelineBase: ...
    @property
    def store(self) -> StateStore: ...
    @property
    def now(self) -> Callable[[], datetime]: ...


@dataclass(frozen=True, slots=True)
class StockoutAlert:
    """A key whose projected stock-out entered its lead time."""

    pipeline: str
    plan: ReorderPlan
    at: datetime
    alert_id: str = field(default_factory=lambda: str(uuid.uuid4()), compare=False)

    def payload(self) -> dict[str, Any]:
        """The webhook body (documented in the README)."""
        key = parse_stock_key(self.plan.key)
        p = self.plan
        return {
            "alert_id": self.alert_id,
            "event": STOCKOUT_PROJECTED,
            "pipeline": self.pipeline,
            "sku": key.sku,
            "warehouse": key.warehouse,
            "stockout_date": p.stockout_date.isoformat() if p.stockout_date else None,
            "lead_time_days": p.lead_time_days,
            "available": p.available,
            "demand_over_lead_time": p.demand_over_lead_time,
            "reorder_point": p.reorder_point,
            "order_quantity": p.order_quantity,
            "at": self.at.isoformat(),
        }

    def stored(self) -> AlertEventRow:
        key = parse_stock_key(self.plan.key)
        return AlertEventRow(
            self.alert_id,
            self.pipeline,
            STOCKOUT_PROJECTED,
            key.sku,
            key.warehouse,
            self.payload(),
            self.at,
        )


def projected(
    pipeline: str,
    plans: Iterable[ReorderPlan],
    previous: Mapping[StockKey, StoredPlan],
    now: datetime,
) -> list[StockoutAlert]:
    """Keys that entered "stock-out within the lead time" since the stored plans. Pure."""
    alerts = []
    for plan in plans:
        before = previous.get(parse_stock_key(plan.key))
        was = before is not None and before.plan.stockout_within_lead_time
        if plan.stockout_within_lead_time and not was:
            alerts.append(StockoutAlert(pipeline, plan, now))
    return alerts


def nightly_plan(pipeline: PlannedPipeline) -> dict[str, int]:
    """Forecast (``forecast.jobs`` processes), store the plans, alert; returns counts (keys,
    stockouts, orders)."""
    from sync.forecast.run import forecast_pipeline

    store, now, p = pipeline.store, pipeline.now(), pipeline.settings
    fitted, plans = forecast_pipeline(store, p, now.date(), n_jobs=p.forecast.jobs)
    alerts = projected(p.name, plans, store.reorder_plans(p.name), now)
    rows = [
        StoredPlan(f.forecast.sku, f.forecast.warehouse, f.forecast.model, now, plan)
        for f, plan in zip(fitted, plans, strict=True)
    ]
    owed = [a.stored() for a in alerts] if p.alerts.webhook is not None else []
    with store.transaction() as tx:
        tx.replace_reorder_plans(p.name, rows)
        tx.add_alert_events(owed)
        tx.enqueue(p.name, ALERT, [row.alert_id for row in owed], now)
    for a in alerts:
        log.warning(STOCKOUT_PROJECTED, **{k: v for k, v in a.payload().items() if k != "event"})
    orders = sum(1 for plan in plans if plan.order_quantity > 0)
    return {"keys": len(plans), "stockouts": len(alerts), "orders": orders}

"""The nightly reorder plan: stored per key, ``stockout_projected`` fired once per entry into
the lead time (log, and the webhook's outbox row when configured); its daemon job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sync import config as cfg
from sync.config import PipelineBase, WebhookSettings
from sync.forecast.model import ReorderPlan
from sync.forecast.nightly import STOCKOUT_PROJECTED, nightly_plan, projected
from sync.model import StockKey
from sync.service.scheduler import triggers
from sync.state.store import ALERT, StateStore, StoredPlan
from tests.forecast.conftest import NAME

NOW = datetime(2026, 3, 2, 3, tzinfo=UTC)


def plan(key: str, within: bool) -> ReorderPlan:
    return ReorderPlan(
        key, 5, 5, 4, 0.95, 8, 2, None, 10, 12, date(2026, 3, 3) if within else None, within, True
    )


def test_projected_fires_on_entry_only() -> None:
    previous = {
        StockKey("OLD", "W"): StoredPlan("OLD", "W", "AutoETS", NOW, plan("OLD@W", True)),
        StockKey("BACK", "W"): StoredPlan("BACK", "W", "AutoETS", NOW, plan("BACK@W", False)),
    }
    now = [plan("OLD@W", True), plan("BACK@W", True), plan("NEW@W", True), plan("OK@W", False)]
    fired = projected("p", now, previous, NOW)
    assert [a.plan.key for a in fired] == ["BACK@W", "NEW@W"]
    body = fired[0].payload()
    assert (body["event"], body["sku"], body["warehouse"]) == (STOCKOUT_PROJECTED, "BACK", "W")
    assert (body["stockout_date"], body["lead_time_days"], body["order_quantity"]) == (
        "2026-03-03",
        4,
        12,
    )


@dataclass
class Planned:
    settings: PipelineBase
    store: StateStore

    @property
    def name(self) -> str:
        return self.settings.name

    def now(self) -> datetime:
        return datetime.now(UTC)


def test_nightly_stores_plans_and_alerts_once(world: Path) -> None:
    settings = cfg.load(world)
    p = settings.pipeline(NAME)
    hook = WebhookSettings(url="https://hooks.example.com/stock")  # type: ignore[arg-type]
    p = p.model_copy(update={"alerts": p.alerts.model_copy(update={"webhook": hook})})
    store = StateStore(settings.state.url)
    try:
        first = nightly_plan(Planned(p, store))
        # NEG (out now) and NEW (out in 3 days, lead time 4) enter the lead time; SEAS and
        # IDLE do not; NEG and NEW also need an order
        assert first == {"keys": 4, "stockouts": 2, "orders": 2}
        stored = store.reorder_plans(NAME)
        assert sorted(str(k) for k in stored) == [
            "IDLE@WH-MAIN",
            "NEG@WH-MAIN",
            "NEW@WH-MAIN",
            "SEAS@WH-MAIN",
        ]
        neg = stored[StockKey("NEG", "WH-MAIN")]
        assert neg.model == "HistoricAverage" and neg.plan.stockout_within_lead_time
        assert neg.plan.demand_over_lead_time == 24.0 and neg.plan.available == -6.0
        owed = [r for r in store.outbox_rows(NAME) if r.target == ALERT]
        assert len(owed) == 2
        event = store.alert_event(owed[0].ref)
        assert event is not None and event.event == STOCKOUT_PROJECTED
        again = nightly_plan(Planned(p, store))
        assert again["stockouts"] == 0  # still projected out: no second alert
        assert len([r for r in store.outbox_rows(NAME) if r.target == ALERT]) == 2
    finally:
        store.close()


def test_the_daemon_job_exists_only_when_configured(world: Path) -> None:
    p = cfg.load(world).pipeline(NAME)
    assert "forecast" not in triggers(p)
    nightly = replace_forecast(p, "15 3 * * *")
    assert str(triggers(nightly)["forecast"]).startswith("cron[")


def replace_forecast(p: PipelineBase, cron: str) -> PipelineBase:
    return p.model_copy(update={"forecast": p.forecast.model_copy(update={"nightly_cron": cron})})

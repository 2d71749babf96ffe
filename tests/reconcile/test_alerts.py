"""Safety-stock alerts: one webhook per crossing, none while staying low (delivery through the
outbox: tests/reconcile/test_alert_outbox.py)."""

from __future__ import annotations

from decimal import Decimal

from sync import config as cfg
from sync.alert_scope import scope
from sync.alerts import check_alerts, detect, threshold_of
from sync.config import AlertSettings
from sync.model import LevelValue, StockKey
from sync.runtime import Pipeline, build_pipeline, run_cycle
from sync.state.store import AlertState
from tests.conftest import Clock
from tests.reconcile.conftest import MakePipeline, MemoryPipeline, WebhookReceiver, memory_yaml, utc

A, B = StockKey("A", "W1"), StockKey("B", "W2")
NOW = utc(2026, 3, 1)


def _on_hand(qty: int) -> LevelValue:
    return LevelValue(real=Decimal(qty), available=Decimal(qty))


def test_thresholds_prefer_sku_at_warehouse_then_sku_then_crm_then_default() -> None:
    s = AlertSettings(
        default_threshold=Decimal(1), thresholds={"A@W1": Decimal(9), "A": Decimal(5)}
    )
    assert threshold_of(A, s) == 9
    assert threshold_of(StockKey("A", "W9"), s) == 5
    assert threshold_of(B, s, {B: Decimal(3)}) == 3
    assert threshold_of(B, s) == 1
    assert threshold_of(B, AlertSettings()) is None


def test_detect_fires_on_crossings_only() -> None:
    limit = {A: Decimal(10)}.get
    events, states = detect("p", [(A, _on_hand(12))], limit, {}, NOW)
    assert events == [] and states[A].low is False  # first sight, not low: remembered, silent
    events, states = detect("p", [(A, _on_hand(4))], limit, states, NOW)
    assert [e.transition for e in events] == ["low"]
    prior = {A: AlertState(True, Decimal(10), Decimal(4), NOW)}
    assert detect("p", [(A, _on_hand(3))], limit, prior, NOW) == ([], {})
    events, _ = detect("p", [(A, _on_hand(10))], limit, prior, NOW)
    assert [e.transition for e in events] == ["recovered"]
    events, _ = detect("p", [(A, _on_hand(1))], lambda k: None, prior, NOW)
    assert [e.transition for e in events] == ["recovered"]  # threshold removed


def test_crossing_fires_one_webhook_each_way(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    mp = make_pipeline(
        f"    alerts: {{thresholds: {{A: 10}}, webhook: {{url: '{webhook.url}'}}}}\n"
    )
    mp.erp.set_opening("A", "W1", 15)
    run_cycle(mp.pipeline)  # checks alerts after its push
    assert check_alerts(mp.pipeline) == [] and webhook.received == []

    mp.move("A", "-8")  # 7 < 10: crosses below
    run_cycle(mp.pipeline)
    assert check_alerts(mp.pipeline) == []  # run_cycle already fired it
    assert [r["event"] for r in webhook.received] == ["stock_low"]
    (event,) = mp.store.alert_events(mp.name)
    assert webhook.received[0] == {
        "alert_id": event.alert_id,
        "event": "stock_low",
        "pipeline": mp.name,
        "sku": "A",
        "warehouse": "W1",
        "basis": "on_hand",
        "qty": "7",
        "threshold": "10",
        "on_hand": "7",
        "reserved": "0",
        "available": "7",
        "at": mp.clock.now.isoformat(),
    }

    mp.move("A", "-1")  # still low: nothing
    run_cycle(mp.pipeline)
    assert check_alerts(mp.pipeline) == []  # run_cycle already fired it
    assert len(webhook.received) == 1

    mp.move("A", "20")  # recovers
    run_cycle(mp.pipeline)
    assert check_alerts(mp.pipeline) == []  # run_cycle already fired it
    assert [r["event"] for r in webhook.received] == ["stock_low", "stock_recovered"]


# --------------------------------------------------------------- basis: available
AVAILABLE = "    alerts: {{thresholds: {{A: 10}}, basis: available, webhook: {{url: '{url}'}}}}\n"


def test_a_reservation_fires_stock_low_while_on_hand_stays(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    mp = make_pipeline(AVAILABLE.format(url=webhook.url))
    mp.erp.set_opening("A", "W1", 15)
    run_cycle(mp.pipeline)
    assert webhook.received == []
    mp.clock.advance(600)  # past the overlap: the level is not "new" any more
    mp.erp.reserve("A", "W1", 8)  # 15 on hand, 7 available < 10
    run_cycle(mp.pipeline)
    assert webhook.received == [
        {
            "alert_id": mp.store.alert_events(mp.name)[0].alert_id,
            "event": "stock_low",
            "pipeline": mp.name,
            "sku": "A",
            "warehouse": "W1",
            "basis": "available",
            "qty": "7",
            "threshold": "10",
            "on_hand": "15",
            "reserved": "8",
            "available": "7",
            "at": mp.clock.now.isoformat(),
        }
    ]
    mp.clock.advance(600)
    mp.erp.reserve("A", "W1", 6)  # 9 available: still low, nothing
    run_cycle(mp.pipeline)
    assert len(webhook.received) == 1
    mp.clock.advance(600)
    mp.erp.reserve("A", "W1", 0)  # released: the row is deleted, the low key recovers
    run_cycle(mp.pipeline)
    assert [(r["event"], r["qty"], r["reserved"]) for r in webhook.received[1:]] == [
        ("stock_recovered", "15", "0")
    ]
    assert mp.store.alert_states(mp.name)[A].low is False


def test_reservations_over_on_hand_fire_with_available_below_zero(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    mp = make_pipeline(AVAILABLE.format(url=webhook.url))
    mp.erp.set_opening("A", "W1", 30)
    mp.erp.reserve("A", "W1", 45)
    run_cycle(mp.pipeline)
    assert [
        (r["event"], r["on_hand"], r["reserved"], r["available"]) for r in webhook.received
    ] == [("stock_low", "30", "45", "-15")]
    shown = {r.key: r.value for r in mp.crm.levels.values()}
    assert shown[A] == LevelValue(Decimal(30), Decimal(-15))  # as the ERP shows it


def test_a_key_reserved_with_nothing_on_hand_fires_on_the_first_and_later_checks(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    """Z was never stocked (no level row) but the ERP reserves 3: the CRM shows it at
    available −3, so an available-basis check must see it — on its first check (every
    key) and on a later one (only keys that moved)."""
    text = "    alerts: {{default_threshold: 0, basis: available, webhook: {{url: '{url}'}}}}\n"
    mp = make_pipeline(text.format(url=webhook.url))
    mp.erp.reserve("Z", "W1", 3)
    run_cycle(mp.pipeline)
    assert [(r["sku"], r["on_hand"], r["available"]) for r in webhook.received] == [
        ("Z", "0", "-3")
    ]
    mp.clock.advance(600)
    mp.erp.reserve("Y", "W1", "0.5")
    run_cycle(mp.pipeline)
    assert [(r["sku"], r["event"], r["available"]) for r in webhook.received[1:]] == [
        ("Y", "stock_low", "-0.5")
    ]
    mp.clock.advance(600)
    mp.erp.reserve("Z", "W1", 0)  # released: Z has nothing at all again and recovers
    run_cycle(mp.pipeline)
    assert [(r["sku"], r["event"], r["available"]) for r in webhook.received[2:]] == [
        ("Z", "stock_recovered", "0")
    ]


def test_on_hand_basis_ignores_reservations(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    mp = make_pipeline(
        f"    alerts: {{thresholds: {{A: 10}}, webhook: {{url: '{webhook.url}'}}}}\n"
    )
    mp.erp.set_opening("A", "W1", 15)
    mp.erp.reserve("A", "W1", 15)
    run_cycle(mp.pipeline)
    assert webhook.received == []
    mp.move("A", "-6")  # 9 on hand < 10
    run_cycle(mp.pipeline)
    assert [(r["basis"], r["qty"], r["available"]) for r in webhook.received] == [
        ("on_hand", "9", "-6")
    ]


def test_a_static_reservation_changed_by_a_reload_fires(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    alerts = AVAILABLE.format(url=webhook.url)
    mp = make_pipeline(alerts + "    push: {reservations: {A@W1: 2}}\n")
    mp.erp.set_opening("A", "W1", 15)
    run_cycle(mp.pipeline)
    assert webhook.received == []
    mp.clock.advance(600)
    reloaded = _reload(mp, alerts + "    push: {reservations: {A@W1: 6}}\n")  # 9 available
    run_cycle(reloaded)
    assert [(r["event"], r["reserved"], r["available"]) for r in webhook.received] == [
        ("stock_low", "6", "9")
    ]


def _reload(mp: MemoryPipeline, extra: str) -> Pipeline:
    """A new pipeline from new settings on the same state DB and connectors (a reload)."""
    settings = cfg.parse(memory_yaml(mp.name, extra)).pipeline(mp.name)
    return build_pipeline(settings, mp.store, now=mp.clock)


def _scope(mp: MemoryPipeline, pipeline: Pipeline | None = None) -> tuple[bool, list[StockKey]]:
    p = pipeline or mp.pipeline
    settings = p.settings.alerts
    found = scope(
        mp.store,
        mp.name,
        settings,
        static=p.settings.push.reservations,
        crm=None,
        threshold=lambda key: threshold_of(key, settings),
        now=mp.clock.now,
    )
    return found.full, [key for key, _ in found.on_hand]


def _settle(p: Pipeline, clock: Clock) -> None:
    """A quiet cycle well after the last writes: they fall out of the overlap."""
    clock.advance(600)
    run_cycle(p)


def test_the_check_looks_only_at_keys_that_moved(make_pipeline: MakePipeline) -> None:
    extra = "    alerts: {default_threshold: 5, basis: available}\n"
    mp = make_pipeline(extra + "    push: {reservations: {C@W1: 1}}\n")
    for n in range(20):
        mp.erp.set_opening(f"S{n}", "W1", 10)
    mp.erp.set_opening("C", "W1", 10)
    # never checked: every level (none yet) and every key with a reservation (C's static
    # one), at on hand 0 while it has no level
    assert _scope(mp) == (True, [StockKey("C", "W1")])
    run_cycle(mp.pipeline)
    assert len(mp.store.alert_states(mp.name)) == 21
    # the next check looks again at what was written up to OVERLAP_S before the last one
    assert _scope(mp)[0] is False and len(_scope(mp)[1]) == 21
    _settle(mp.pipeline, mp.clock)
    assert _scope(mp) == (False, [])  # quiet: not one key
    mp.move("S3", "-1")  # a level written
    mp.erp.reserve("S7", "W1", 2)  # an ERP reserved figure written
    mp.pipeline.pull()
    mp.pipeline.refresh_reservations()
    assert _scope(mp) == (False, [StockKey("S3", "W1"), StockKey("S7", "W1")])
    run_cycle(mp.pipeline)
    mp.erp.reserve("S7", "W1", 9)  # S7 low: 1 available
    _settle(mp.pipeline, mp.clock)
    assert mp.store.low_alert_keys(mp.name) == {StockKey("S7", "W1")}
    _settle(mp.pipeline, mp.clock)
    mp.erp.reserve("S7", "W1", 0)  # released: no row, no stamp; S7 is looked at as a low key
    mp.pipeline.refresh_reservations()
    assert _scope(mp) == (False, [StockKey("S7", "W1")])
    run_cycle(mp.pipeline)
    assert mp.store.low_alert_keys(mp.name) == set()
    _settle(mp.pipeline, mp.clock)
    reloaded = _reload(mp, extra + "    push: {reservations: {C@W1: 3}}\n")
    assert _scope(mp, reloaded) == (False, [StockKey("C", "W1")])  # its static figure changed
    _settle(reloaded, mp.clock)
    assert _scope(mp, reloaded) == (False, [])
    rethreshold = _reload(mp, "    alerts: {default_threshold: 6, basis: available}\n")
    full, seen = _scope(mp, rethreshold)
    assert full and len(seen) == 21  # a threshold setting changed: every key again


def test_a_threshold_set_in_the_crm_later_fires(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    mp = make_pipeline(f"    alerts: {{from_crm: true, webhook: {{url: '{webhook.url}'}}}}\n")
    crm_safety = {A: Decimal(5)}
    mp.crm.safety_stocks = lambda: dict(crm_safety)  # type: ignore[attr-defined]
    mp.erp.set_opening("A", "W1", 12)
    mp.erp.set_opening("B", "W2", 12)
    run_cycle(mp.pipeline)
    _settle(mp.pipeline, mp.clock)
    crm_safety[B] = Decimal(20)  # someone sets B's safety stock in the CRM: 12 < 20
    run_cycle(mp.pipeline)
    assert [(r["event"], r["sku"], r["threshold"]) for r in webhook.received] == [
        ("stock_low", "B", "20")
    ]
    assert mp.store.meta(mp.name, "alerts_checked_at") == mp.clock.now.isoformat()

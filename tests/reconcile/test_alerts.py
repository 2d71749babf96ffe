"""Safety-stock alerts: one webhook per crossing, none while staying low, retries never block."""

from __future__ import annotations

import time
from decimal import Decimal

from sync.alerts import check_alerts, detect, threshold_of
from sync.config import AlertSettings
from sync.model import LevelValue, StockKey
from sync.pull import ensure_baseline
from sync.runtime import run_cycle
from sync.state.store import AlertState
from tests.reconcile.conftest import MakePipeline, WebhookReceiver, utc

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
    assert webhook.received[0] == {
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


def test_failing_webhook_is_retried_and_does_not_block(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    webhook.status = 500
    mp = make_pipeline(
        "    alerts:\n"
        "      default_threshold: 5\n"
        f"      webhook: {{url: '{webhook.url}', max_attempts: 3, timeout_s: 2}}\n"
    )
    mp.erp.set_opening("A", "W1", 1)
    started = time.monotonic()
    result = run_cycle(mp.pipeline)  # the cycle checks alerts after its push
    assert result.ok and mp.crm.values() == {A: Decimal(1)}
    assert webhook.attempts == 3 and webhook.received == []
    assert time.monotonic() - started < 10
    # the state is kept: the failed alert is logged and left, not re-sent every cycle
    slept: list[float] = []
    assert check_alerts(mp.pipeline, sleep=slept.append) == [] and webhook.attempts == 3
    # a later crossing is delivered again, with retries between attempts
    webhook.status = 200
    mp.move("A", "10")
    run_cycle(mp.pipeline)
    assert [r["event"] for r in webhook.received] == ["stock_recovered"]


def test_direct_check_retries_with_injected_sleep(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    webhook.status = 503
    mp = make_pipeline(
        "    alerts:\n"
        "      default_threshold: 5\n"
        f"      webhook: {{url: '{webhook.url}', max_attempts: 4}}\n"
    )
    mp.erp.set_opening("A", "W1", 1)
    ensure_baseline(mp.store, mp.erp, mp.name, now=mp.clock)  # a level, no cycle (no alerts)
    slept: list[float] = []
    events = check_alerts(mp.pipeline, sleep=slept.append)
    assert [e.transition for e in events] == ["low"]
    assert webhook.attempts == 4 and len(slept) == 3

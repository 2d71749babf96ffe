"""Safety-stock webhooks go through the outbox (issue 16, defect 9).

A failing receiver costs one POST per cycle and never a sleep; its alert waits in
the outbox (backoff, attempts, dead rows, ``stocksync retry``) and is marked
delivered only after a 2xx. A repeated delivery carries the same ``alert_id``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.alerts import check_alerts
from sync.errors import PermanentError, TransientError
from sync.model import StockKey
from sync.runtime import Pipeline, build_pipeline, open_store, run_cycle
from sync.state import StateStore
from sync.state.store import ALERT, DEAD, PENDING, OutboxRow, Tx
from sync.webhook import check_answer
from tests.conftest import Clock
from tests.reconcile.conftest import (
    MakePipeline,
    MemoryPipeline,
    WebhookReceiver,
    cli,
    memory_yaml,
    pipelines_on,
)

A, B = StockKey("A", "W1"), StockKey("B", "W1")


def hook(url: str, extra: str = "") -> str:
    """Alerts below 5 with a webhook; a failed row waits 30 to 60 s."""
    return (
        "    alerts:\n"
        "      default_threshold: 5\n"
        f"      webhook: {{url: '{url}'{extra}}}\n"
        "    push: {retry_initial_s: 60}\n"
    )


def alert_rows(mp: MemoryPipeline) -> list[OutboxRow]:
    return [r for r in mp.store.outbox_rows(mp.name) if r.target == ALERT]


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any retry that sleeps inside the cycle fails the test."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s inside a cycle")

    monkeypatch.setattr(time, "sleep", refuse)


def test_a_failing_webhook_costs_one_post_then_its_alerts_are_delivered_once(
    make_pipeline: MakePipeline, webhook: WebhookReceiver, no_sleep: None
) -> None:
    webhook.status = 500
    mp = make_pipeline(hook(webhook.url))
    mp.erp.set_opening("A", "W1", 1)
    mp.erp.set_opening("B", "W1", 2)
    result = run_cycle(mp.pipeline)
    assert result.ok and mp.crm.values() == {A: Decimal(1), B: Decimal(2)}  # stock went on
    # one failed POST: the second alert is not tried against a receiver that just failed
    assert webhook.attempts == 1 and webhook.received == []
    assert (result.push.retried, result.push.alerted, result.push.pushed) == (1, 0, 2)
    events = mp.store.alert_events(mp.name)
    rows = alert_rows(mp)
    assert sorted(r.ref for r in rows) == sorted(e.alert_id for e in events)
    (tried,) = [r for r in rows if r.attempts]
    (waiting,) = [r for r in rows if not r.attempts]
    assert (tried.state, tried.attempts) == (PENDING, 1)
    assert tried.last_error == "alerts webhook answered HTTP 500"
    assert mp.clock.now + timedelta(seconds=30) <= tried.next_attempt_at
    assert tried.next_attempt_at <= mp.clock.now + timedelta(seconds=60)
    assert (waiting.state, waiting.next_attempt_at) == (PENDING, mp.clock.now)
    assert [e.delivered_at for e in events] == [None, None]  # not sent, not marked sent

    mp.clock.advance(1)  # the untried alert is due, the failed one waits its backoff
    run_cycle(mp.pipeline)
    assert webhook.attempts == 2 and {r.attempts for r in alert_rows(mp)} == {1}

    webhook.status = 200  # the receiver is back
    mp.clock.advance(61)
    result = run_cycle(mp.pipeline)
    assert result.push.alerted == 2 and alert_rows(mp) == []
    assert sorted(r["alert_id"] for r in webhook.received) == sorted(e.alert_id for e in events)
    assert webhook.keys == [r["alert_id"] for r in webhook.received]  # Idempotency-Key
    assert {e.delivered_at for e in mp.store.alert_events(mp.name)} == {mp.clock.now}
    mp.clock.advance(3600)
    run_cycle(mp.pipeline)
    assert len(webhook.received) == 2 and webhook.attempts == 4  # exactly once each


def test_a_refused_connection_waits_in_the_outbox_until_the_receiver_is_back(
    make_pipeline: MakePipeline, webhook: WebhookReceiver, no_sleep: None
) -> None:
    mp = make_pipeline(hook(webhook.url))
    webhook.stop()  # nothing listens on the port: the connection is refused
    mp.erp.set_opening("A", "W1", 1)
    assert run_cycle(mp.pipeline).ok
    (row,) = alert_rows(mp)
    assert (row.state, row.attempts) == (PENDING, 1) and row.next_attempt_at > mp.clock.now
    assert (row.last_error or "").startswith("alerts webhook: ConnectError")
    mp.clock.advance(10)
    run_cycle(mp.pipeline)  # not due yet: no second attempt
    assert alert_rows(mp)[0].attempts == 1

    webhook.start()
    mp.clock.advance(60)
    run_cycle(mp.pipeline)
    (event,) = mp.store.alert_events(mp.name)
    assert [r["alert_id"] for r in webhook.received] == [event.alert_id]
    assert alert_rows(mp) == [] and event.delivered_at == mp.clock.now


def test_a_transient_answer_kills_the_row_after_the_webhook_attempts(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    webhook.status = 503
    mp = make_pipeline(hook(webhook.url, ", max_attempts: 2"))
    mp.erp.set_opening("A", "W1", 1)
    run_cycle(mp.pipeline)
    assert [(r.state, r.attempts) for r in alert_rows(mp)] == [(PENDING, 1)]
    mp.clock.advance(61)
    result = run_cycle(mp.pipeline)
    assert [(r.state, r.attempts) for r in alert_rows(mp)] == [(DEAD, 2)]
    assert result.push.dead == 1 and webhook.attempts == 2


def test_a_crash_between_the_answer_and_the_mark_redelivers_the_same_alert_id(
    make_pipeline: MakePipeline, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp = make_pipeline(hook(webhook.url))
    mp.erp.set_opening("A", "W1", 1)

    def crash(self: Tx, alert_id: str, now: datetime) -> None:
        raise RuntimeError("killed after the webhook answered")

    with monkeypatch.context() as patch:
        patch.setattr(Tx, "mark_alert_delivered", crash)
        with pytest.raises(RuntimeError):
            run_cycle(mp.pipeline)
    assert len(webhook.received) == 1  # delivered, but the commit never happened
    (event,) = mp.store.alert_events(mp.name)
    assert event.delivered_at is None and [r.attempts for r in alert_rows(mp)] == [0]

    run_cycle(mp.pipeline)  # the restarted daemon
    assert [r["alert_id"] for r in webhook.received] == [event.alert_id, event.alert_id]
    assert webhook.received[0] == webhook.received[1]  # the same body, as stored
    assert alert_rows(mp) == [] and mp.store.alert_events(mp.name)[0].delivered_at is not None
    run_cycle(mp.pipeline)
    assert len(webhook.received) == 2


def test_alerts_without_a_webhook_are_log_events_only(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline("    alerts: {default_threshold: 5}\n")
    mp.erp.set_opening("A", "W1", 1)
    with capture_logs() as logs:
        run_cycle(mp.pipeline)
    (low,) = [e for e in logs if e["event"] == "stock_low"]
    assert (low["sku"], low["qty"], low["threshold"]) == ("A", "1", "5")
    assert alert_rows(mp) == [] and mp.store.alert_events(mp.name) == []
    assert mp.store.low_alert_keys(mp.name) == {A}


def test_a_webhook_removed_from_the_config_finishes_its_rows_unsent(
    make_pipeline: MakePipeline, webhook: WebhookReceiver
) -> None:
    mp = make_pipeline(hook(webhook.url))
    mp.erp.set_opening("A", "W1", 1)
    mp.pipeline.ensure_baseline()
    check_alerts(mp.pipeline)  # queued, not delivered yet
    assert len(alert_rows(mp)) == 1
    settings = cfg.parse(memory_yaml(mp.name, "    alerts: {default_threshold: 5}\n"))
    reloaded = build_pipeline(settings.pipeline(mp.name), mp.store, now=mp.clock)
    with capture_logs() as logs:
        result = run_cycle(reloaded)
    assert alert_rows(mp) == [] and webhook.attempts == 0 and result.push.dead == 0
    assert [e["reason"] for e in logs if e["event"] == "alert_dropped"] == [
        "alerts.webhook is not configured any more"
    ]
    assert mp.store.alert_events(mp.name)[0].delivered_at is None


@pytest.fixture
def make_anywhere(any_store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    yield from pipelines_on(any_store, clock)


def test_the_alert_outbox_on_every_backend(
    make_anywhere: MakePipeline, webhook: WebhookReceiver
) -> None:
    webhook.status = 502
    mp = make_anywhere(hook(webhook.url))
    mp.erp.set_opening("Ä-1", "W1", 1)
    run_cycle(mp.pipeline)
    (row,) = alert_rows(mp)
    (event,) = mp.store.alert_events(mp.name)
    assert (row.ref, row.state, row.attempts) == (event.alert_id, PENDING, 1)
    assert (event.event, event.sku, event.payload["sku"]) == ("stock_low", "Ä-1", "Ä-1")
    webhook.status = 200
    mp.clock.advance(61)
    run_cycle(mp.pipeline)
    assert webhook.received == [event.payload] and alert_rows(mp) == []
    assert mp.store.alert_events(mp.name)[0].delivered_at == mp.clock.now


# ------------------------------------------------------- dead rows: status and retry
NAME = "alerthook"


@pytest.fixture
def on_file(tmp_path: Path) -> Iterator[tuple[Path, MemoryErp, Clock]]:
    """A config file and a file-backed state DB, for the CLI (ERP and CRM in memory)."""
    erp, crm = MemoryErp(), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    yield tmp_path / "stocksync.yaml", erp, Clock(datetime.now(UTC))
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)


def _pipeline(path: Path, url: str, clock: Clock) -> Pipeline:
    state = f"sqlite:///{path.parent / 'state.db'}"
    path.write_text(memory_yaml(NAME, hook(url), state))
    settings = cfg.load(path)
    return build_pipeline(settings.pipeline(NAME), open_store(settings), now=clock)


@pytest.mark.parametrize("status", [400, 404])
def test_a_rejected_alert_is_dead_listed_by_status_and_sent_after_retry(
    on_file: tuple[Path, MemoryErp, Clock], webhook: WebhookReceiver, status: int
) -> None:
    path, erp, clock = on_file
    pipeline = _pipeline(path, webhook.url, clock)
    webhook.status = status
    erp.set_opening("A", "W1", 1)
    result = run_cycle(pipeline)
    assert result.push.dead == 1 and webhook.attempts == 1
    code, out = cli("status", "-c", str(path), "--format", "json")
    (stuck,) = json.loads(out)["stuck"]
    (event,) = pipeline.store.alert_events(NAME)
    assert (stuck["target"], stuck["key"], stuck["state"], stuck["attempts"]) == (
        "alert",
        event.alert_id,
        "dead",
        1,
    )
    assert stuck["last_error"] == f"alerts webhook answered HTTP {status}"
    clock.advance(3600)
    run_cycle(pipeline)
    assert webhook.attempts == 1  # dead: not tried again until requeued

    webhook.status = 200  # the receiver is fixed
    code, out = cli("retry", str(stuck["id"]), "-c", str(path))
    assert code == 0 and "requeued 1 dead row(s)" in out
    clock.advance(1)  # past the requeue time (the real clock's now)
    run_cycle(pipeline)
    assert [r["alert_id"] for r in webhook.received] == [event.alert_id]
    code, out = cli("status", "-c", str(path), "--format", "json")
    assert json.loads(out)["stuck"] == [] and pipeline.store.alert_events(NAME)[0].delivered_at
    pipeline.store.close()


@pytest.mark.parametrize(
    ("status", "retry_after", "expected", "hint_s"),
    [
        (200, None, None, None),
        (204, None, None, None),
        (500, None, TransientError, None),
        (502, None, TransientError, None),
        (503, "120", TransientError, 120.0),
        (429, "30", TransientError, 30.0),
        (408, None, TransientError, None),
        (400, None, PermanentError, None),
        (401, None, PermanentError, None),
        (404, None, PermanentError, None),
        (410, None, PermanentError, None),
        (301, None, PermanentError, None),
    ],
)
def test_answers_map_to_delivered_transient_or_permanent(
    status: int, retry_after: str | None, expected: type[Exception] | None, hint_s: float | None
) -> None:
    if expected is None:
        check_answer(status, "", retry_after)
        return
    with pytest.raises(expected) as caught:
        check_answer(status, "no such hook ", retry_after)
    assert str(caught.value) == f"alerts webhook answered HTTP {status}: no such hook"
    assert getattr(caught.value, "retry_after_s", None) == hint_s


def test_delivered_alert_events_are_pruned_with_the_push_log(store: StateStore) -> None:
    """Kept as long as the push log (push.log_retention_days); an undelivered one stays."""
    from sync.state.rows import AlertEventRow

    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def event(alert_id: str, pipeline: str = "p") -> AlertEventRow:
        return AlertEventRow(alert_id, pipeline, "stock_low", "A", "W1", {"alert_id": alert_id}, t0)

    with store.transaction() as tx:
        tx.add_alert_events([event("old"), event("recent"), event("owed"), event("x", "other")])
        tx.mark_alert_delivered("old", t0)
        tx.mark_alert_delivered("recent", t0 + timedelta(days=29))
        tx.mark_alert_delivered("x", t0)
    assert store.prune_alert_events("p", t0 + timedelta(days=1)) == 1
    kept = {a: store.alert_event(a) is not None for a in ("old", "recent", "owed", "x")}
    assert kept == {"old": False, "recent": True, "owed": True, "x": True}

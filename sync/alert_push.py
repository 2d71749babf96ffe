"""Delivering one safety-stock alert row of the outbox to the webhook.

``sync.alerts`` stores each crossing (its body, with ``alert_id``) and its outbox
row in the transaction that changes the alert state. Here the body is POSTed as
stored; only a 2xx answer marks it delivered and finishes the row, in one
transaction. A crash between the answer and that commit sends the same body
again: receivers dedupe on ``alert_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from sync.state.store import OutboxRow, StateStore

if TYPE_CHECKING:
    from sync.webhook import Webhook

log = structlog.get_logger("stocksync.alerts")


def deliver(
    store: StateStore, row: OutboxRow, webhook: Webhook | None, now: Callable[[], datetime]
) -> bool:
    """POST the alert of ``row``; True when delivered now, False when the row is finished
    without a POST (already delivered before a crash, or no webhook configured any more).

    Raises what ``Webhook.deliver`` raises: the pusher reschedules or kills the row.
    """
    event = store.alert_event(row.ref)
    if event is None or event.delivered_at is not None or webhook is None:
        if event is not None and event.delivered_at is None:
            # the webhook was removed from the config: as for any alert without one,
            # the log event (written when it fired) is all there is
            log.warning(
                "alert_dropped",
                pipeline=event.pipeline,
                alert_id=event.alert_id,
                reason="alerts.webhook is not configured any more",
            )
        with store.transaction() as tx:
            tx.finish_outbox(row)
        return False
    webhook.deliver(event.payload)
    with store.transaction() as tx:
        tx.mark_alert_delivered(event.alert_id, now())
        tx.finish_outbox(row)
    log.info(
        "alert_delivered",
        pipeline=event.pipeline,
        alert_id=event.alert_id,
        alert=event.event,
        sku=event.sku,
        warehouse=event.warehouse,
        attempts=row.attempts + 1,
    )
    return True

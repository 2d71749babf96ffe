"""The alerts webhook client: one JSON POST per call, its answer mapped to our errors.

Nothing is retried here: a failed delivery leaves the alert's outbox row to the
pusher's backoff (``sync.push``), so a dead receiver never holds a cycle. Error
messages never show the URL: a webhook URL often carries its token in the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sync.backoff import retry_after_s
from sync.config import WebhookSettings
from sync.errors import PermanentError, TransientError
from sync.settings import mask

#: answers that say "not now" rather than "never": the row waits and is sent again
TRANSIENT_4XX = frozenset({408, 425, 429})
_HINT = "check alerts.webhook.url and the receiver; then `stocksync retry ID`"


class Webhook:
    """POSTs alert bodies to ``alerts.webhook.url``, one attempt per ``deliver``."""

    def __init__(self, settings: WebhookSettings, *, transport: Any = None) -> None:
        self.url = settings.url
        self.timeout_s = settings.timeout_s
        #: failed deliveries after which the alert's outbox row is dead
        self.max_attempts = settings.max_attempts
        self.transport: httpx.BaseTransport | None = transport

    def deliver(self, body: Mapping[str, Any]) -> None:
        """POST ``body`` as JSON (its ``alert_id`` also as the ``Idempotency-Key`` header).

        Returns on a 2xx answer. Raises ``TransientError`` for a failed connection,
        a timeout, 5xx, 408, 425 or 429 (with the ``Retry-After`` hint), and
        ``PermanentError`` for any other answer or an unusable URL.
        """
        headers = {"Idempotency-Key": str(body.get("alert_id", ""))}
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self.transport) as client:
                response = client.post(self.url, json=dict(body), headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError("alerts webhook: the URL is not usable", hint=_HINT) from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"alerts webhook: {type(exc).__name__}: {mask(str(exc))}") from exc
        check_answer(response.status_code, response.text, response.headers.get("Retry-After"))


def check_answer(status: int, text: str, retry_after: str | None) -> None:
    """Map the receiver's answer to our errors: 2xx is delivered, see ``Webhook.deliver``."""
    if 200 <= status < 300:
        return
    what = f"alerts webhook answered HTTP {status}"
    body = mask(text[:200].strip())
    message = f"{what}: {body}" if body else what
    if status >= 500 or status in TRANSIENT_4XX:
        raise TransientError(message, retry_after_s=retry_after_s(retry_after))
    raise PermanentError(message, hint=_HINT)

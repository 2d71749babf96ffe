"""Exponential backoff with jitter: one rule for HTTP retries and for outbox rescheduling."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

#: attempts past this add nothing (the wait is long capped by then) and 2.0**n would overflow
_MAX_DOUBLINGS = 512


def backoff_s(
    attempt: int,
    *,
    initial_s: float,
    max_s: float,
    hint_s: float | None = None,
    jitter: float = 0.5,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first failure).

    A server's hint (``Retry-After``, a quota reset) wins, capped at ``max_s``.
    Otherwise ``initial_s`` doubles per attempt up to ``max_s``, and the last
    ``jitter`` fraction of it is random (0.5: between half and all of it), so
    clients that failed together do not all retry together.
    """
    if hint_s is not None:
        return float(min(max_s, hint_s))
    base = min(max_s, initial_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    return base * (1 - jitter) + random.uniform(0, base * jitter)


def retry_after_s(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` value in seconds from now (delta-seconds or an HTTP date,
    RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None

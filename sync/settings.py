"""Building blocks for typed settings, shared by the core config and by connectors.

``StrictModel`` is frozen and rejects unknown keys (a typo must never be silently
ignored). ``Secret`` prints as ``***`` everywhere, and every secret value that
passes through here is remembered so that ``mask()`` can scrub it from any text
(log lines, error messages, HTTP bodies echoed in errors).
"""

from __future__ import annotations

import threading
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

MASK = "***"

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value (password, app secret, access token) for masking."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    """Replace every registered secret value in ``text`` by ``***``."""
    if not _secrets or not text:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class Secret(SecretStr):
    """A string that never shows itself: ``str()``, ``repr()`` and JSON dumps give ``***``."""

    def __init__(self, secret_value: str) -> None:
        super().__init__(secret_value)
        register_secret(secret_value)

    def _display(self) -> str:
        return MASK


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


# -- upper bounds (issue 16): every number in the config has one, so that a typo such as
# ``interval_s: 1e35`` is refused by ``check-config`` with its YAML path instead of
# overflowing later (APScheduler, timedelta). Floats also refuse NaN and infinity.

DAY_S = 86_400
#: waits, delays, intervals and grace periods: at most 7 days, in seconds
MAX_WAIT_S = 7 * DAY_S
#: cache lifetimes and other retentions: at most 30 days, in seconds
MAX_RETENTION_S = 30 * DAY_S
#: one HTTP/RPC request's timeout: at most 1 hour, in seconds
MAX_TIMEOUT_S = 3_600
#: attempts of one call, webhook or outbox row
MAX_ATTEMPTS = 1_000
#: a stock quantity or threshold, in the base unit
MAX_QUANTITY = 10**12
#: a database id or other 32-bit signed integer sent to an external system
MAX_INT32 = 2**31 - 1


#: an IANA time zone name, checked when the settings load (e.g. "Asia/Shanghai")
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class StrictModel(BaseModel):
    """Frozen settings model that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def masked_dump(self) -> dict[str, Any]:
        """A dict safe to print: secrets become ``***``."""
        return self.model_dump(mode="json")

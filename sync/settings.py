"""Building blocks for typed settings, shared by the core config and by connectors.

``StrictModel`` is frozen and rejects unknown keys (a typo must never be silently
ignored). ``Secret`` prints as ``***`` everywhere, and every secret value that
passes through here is remembered so that ``mask()`` can scrub it from any text
(log lines, error messages, HTTP bodies echoed in errors). ``mask()`` also hides the
password of every URL with userinfo (``scheme://user:password@host`` →
``scheme://user:***@host``) and of ``password=…`` DSN pairs, registered or not, so a
database URL shown in an error or a traceback never carries its password.
"""

from __future__ import annotations

import re
import threading
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

MASK = "***"

# scheme://user:password@ — the password runs to the last "@" before a blank or a quote,
# so an unencoded "@" inside it is hidden too (SQLAlchemy reads the same URL that way)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*:)(?P<password>[^\s'\"]+)(?=@)"
)
# libpq / MySQL DSN pairs: password=secret or password='se cret'
_DSN_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'[^']*'|[^\s'\",;]+)", re.I)

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value (password, app secret, access token) for masking."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    """``text`` with every registered secret value and every URL/DSN password as ``***``."""
    if not text:
        return text
    if _secrets:
        with _lock:
            values = sorted(_secrets, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    return _DSN_PASSWORD.sub(lambda m: m["head"] + MASK, text)


def mask_url(url: str) -> str:
    """A URL safe to print: ``scheme://user:***@host:port/db`` (SQLAlchemy's rendering).

    A string SQLAlchemy cannot parse goes through ``mask()`` instead.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        shown = url
    return mask(shown)


def register_url_password(url: str) -> None:
    """Register the password of a database URL (as written and decoded) for masking."""
    from urllib.parse import unquote

    match = _URL_PASSWORD.search(url)
    if match:
        register_secret(match["password"])
        register_secret(unquote(match["password"]))


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


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    if any(c.isspace() for c in value):
        raise ValueError(f"{mask(value.strip())!r} is not a URL: it contains a blank")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{mask(value)!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{mask(value)!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{mask(value)!r} has no host (write http://host or https://host)")
    return value


#: an http:// or https:// URL with a host, checked at load time (not at the first request)
HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _secret_http_url(value: str) -> str:
    """A URL whose path and query are a credential (a webhook's token): checked like
    ``HttpUrl``, but no error echoes it, and its path and query are registered secrets,
    so a logged request line shows ``https://host/***``."""
    from urllib.parse import urlsplit

    try:
        _http_url(value)
    except ValueError:
        raise ValueError(
            "is not an http:// or https:// URL with a host (not shown: it may hold a token)"
        ) from None
    parts = urlsplit(value)
    for part in (parts.path.strip("/"), parts.query):
        # a token is long; masking a short path ("hook") would garble every word holding it
        if len(part) >= _TOKEN_MIN_CHARS:
            register_secret(part)
    register_url_password(value)
    return value


#: the shortest URL path or query taken for a credential
_TOKEN_MIN_CHARS = 12


#: an ``HttpUrl`` that is a credential itself (webhook URLs carry their token in the path)
SecretHttpUrl = Annotated[str, AfterValidator(_secret_http_url)]


class StrictModel(BaseModel):
    """Frozen settings model that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def masked_dump(self) -> dict[str, Any]:
        """A dict safe to print: secrets become ``***``."""
        return self.model_dump(mode="json")

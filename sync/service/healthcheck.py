"""``stocksync healthcheck``: ask the daemon's own ``/healthz``, wherever the config serves it.

A container's HEALTHCHECK runs inside the container, so the address is the
config's ``metrics`` host and port, with a wildcard host (all interfaces)
reached through loopback.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request

from sync.config import MetricsSettings
from sync.errors import StockSyncError

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(metrics: MetricsSettings | None) -> str:
    """``http://host:port/healthz`` for a daemon started with ``metrics``.

    Raises ``StockSyncError`` when the daemon serves no ``/healthz`` to find:
    ``metrics: null``, or port 0 (a free port picked at start, known only to the daemon).
    """
    if metrics is None:
        raise StockSyncError(
            "metrics is null: the daemon serves no /healthz to check",
            hint="set metrics.host and metrics.port, or use no health check",
        )
    if metrics.port == 0:
        raise StockSyncError(
            "metrics.port is 0: the daemon picks a free port at start, which no check can know",
            hint="set a fixed metrics.port",
        )
    host = _WILDCARDS.get(metrics.host, metrics.host)
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{metrics.port}/healthz"


def probe(url: str, *, timeout_s: float) -> tuple[bool, str]:
    """(healthy, one line saying why): healthy only on HTTP 200 within ``timeout_s`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200, f"{url}: {response.status} {_reason(response.read())}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code} {_reason(exc.read())}"
    except (OSError, ValueError) as exc:  # refused, timed out, unreachable, malformed
        return False, f"{url}: no answer ({exc})"


def _reason(body: bytes) -> str:
    """The body's status and reason (``/healthz`` JSON), or its first 200 characters."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if not isinstance(data, dict):
        return str(data)[:200]
    return " ".join(str(data[k]) for k in ("status", "reason") if k in data)

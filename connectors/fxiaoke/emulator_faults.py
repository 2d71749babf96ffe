"""The faults the Fxiaoke emulator injects, by name (``FxiaokeEmulator.fail_next``).

Plain kinds answer before the write (busy, rate, token expiry, a 500, a refused
connection or a lost answer) or after it was applied (``*_after_apply``: the
outcome is unknown to the client, architecture §5.5); parametric kinds give any
error code or HTTP status, before or after apply.
"""

from __future__ import annotations

import re
from http import HTTPStatus

import httpx

FAULT_KINDS = frozenset(
    {
        "timeout_after_apply",
        "timeout_before_apply",
        "http_500",
        "http_500_after_apply",
        "busy",
        "rate",
        "token_expired",
        "connect_refused",
    }
)
#: parametric faults: "error:50009", "error_after_apply:-1", "http_502", "http_504_after_apply"
PARAMETRIC_FAULT = re.compile(r"(error|error_after_apply):-?\d+|http_[45]\d\d(_after_apply)?")


class EmulatedTimeout(httpx.ReadTimeout):
    """Raised through ``httpx.WSGITransport`` so the client sees a read timeout."""


class EmulatedConnectError(httpx.ConnectError):
    """Raised before anything is read, as if the server refused the connection."""


def valid_parametric(kind: str) -> bool:
    if not PARAMETRIC_FAULT.fullmatch(kind):
        return False
    status = kind.removeprefix("http_")[:3] if kind.startswith("http_") else None
    return status is None or int(status) in {s.value for s in HTTPStatus}


def fault_parts(fault: str) -> tuple[str, bool]:
    """A parametric fault as (answer, after apply?): ("error:50009", True) for
    "error_after_apply:50009", ("http_502", False) for "http_502"."""
    if fault.startswith("error_after_apply:"):
        return "error:" + fault.split(":", 1)[1], True
    if fault.startswith("http_") and fault.endswith("_after_apply"):
        return fault.removesuffix("_after_apply"), True
    return fault, False

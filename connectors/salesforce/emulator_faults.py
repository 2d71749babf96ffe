"""The faults the Salesforce emulator injects, by name (``SalesforceEmulator.fail_next``).

Call faults answer before anything is written — ``session_expired`` (every session is
dropped, 401 INVALID_SESSION_ID), ``request_limit`` (403 REQUEST_LIMIT_EXCEEDED),
``server_unavailable`` (503 SERVER_UNAVAILABLE), ``unable_to_lock_row`` (every record
of the call fails with UNABLE_TO_LOCK_ROW; a single-record call is a 400),
``timeout_before_apply``, ``connect_refused``, ``http_<status>`` — or after the write
was applied: ``lost_answer`` (the client gets no answer: a read timeout in-process, a
truncated answer on a socket; the outcome is unknown to it) and ``http_<status>_after_apply``.
Record faults (``fail_record``) refuse chosen records of a write by their External ID.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.salesforce.emulator_rules import FieldError

FAULT_KINDS = frozenset(
    {
        "session_expired",
        "request_limit",
        "server_unavailable",
        "unable_to_lock_row",
        "timeout_before_apply",
        "connect_refused",
        "lost_answer",
    }
)
#: "http_500", "http_502_after_apply"
HTTP_FAULT = re.compile(r"http_([45]\d\d)(_after_apply)?")
#: per-record codes a test may inject; any other code is accepted too
LOCK_MESSAGE = "unable to obtain exclusive access to this record or 1 records"


class EmulatedTimeout(httpx.ReadTimeout):
    """Raised through ``httpx.WSGITransport`` so the client sees a read timeout."""


class EmulatedConnectError(httpx.ConnectError):
    """Raised before anything is read, as if the server refused the connection."""


def check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS and not HTTP_FAULT.fullmatch(kind):
        known = [*sorted(FAULT_KINDS), "http_<status>[_after_apply]"]
        raise ValueError(f"unknown fault kind {kind!r}; known: {known}")


@dataclass
class RecordFault:
    """Refuse the record whose External ID is ``key`` (on ``obj``, or any object) with
    ``code``, ``times`` more times (None: every time, like a validation rule)."""

    key: str
    code: str
    message: str
    obj: str | None = None
    times: int | None = 1

    def fires(self, obj: str, key: str) -> bool:
        if key != self.key or (self.obj is not None and self.obj.lower() != obj.lower()):
            return False
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


def default_message(code: str) -> str:
    if code == "UNABLE_TO_LOCK_ROW":
        return LOCK_MESSAGE
    if code == "FIELD_CUSTOM_VALIDATION_EXCEPTION":
        return "Stock level rejected by a validation rule"
    return f"emulated {code}"


class RecordFaults:
    """Record-level refusals of writes: injected ``RecordFault``s and validation rules
    (a predicate on the row as it would be saved → FIELD_CUSTOM_VALIDATION_EXCEPTION, §3)."""

    def __init__(self) -> None:
        self.faults: list[RecordFault] = []
        self.rules: list[tuple[str, Callable[[dict[str, Any]], bool], str]] = []

    def __call__(self, obj: str, key: str, row: dict[str, Any]) -> FieldError | None:
        for fault in self.faults:
            if fault.fires(obj, key):
                return FieldError(fault.code, fault.message, [])
        for name, violated, message in self.rules:
            if name == obj.lower() and violated(row):
                return FieldError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, [])
        return None


def lost_answer(environ: dict[str, Any]) -> Iterator[bytes]:
    """The answer never arrives: in-process (httpx's WSGITransport) a read timeout; on a
    socket (wsgiref sets SERVER_SOFTWARE) the headers then a closed connection."""
    yield b""
    if "SERVER_SOFTWARE" not in environ:
        raise EmulatedTimeout("emulated read timeout after the write was applied")

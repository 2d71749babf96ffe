"""Structured logging: JSON lines for machines, a readable console for people.

Every event can carry run_id / pipeline / stream (bound with
``structlog.contextvars``), and every rendered line passes through the secret
mask last, so a token that slipped into an error message still never reaches
a log line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from sync.settings import mask

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _mask_event(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = mask(value)
        elif isinstance(value, BaseException):
            event[key] = mask(f"{type(value).__name__}: {value}")
    return event


def _masked(renderer: Any) -> Any:
    """``renderer`` whose output passes through ``mask()`` (the console renderer formats
    tracebacks itself, after ``_mask_event`` has run)."""

    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        rendered = renderer(logger, name, event)
        return mask(rendered) if isinstance(rendered, str) else rendered

    return render


def configure(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: Any = None,
) -> None:
    """Configure structlog for the process (idempotent; reload may call it again)."""
    out = stream or sys.stderr
    json_lines = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if json_lines else structlog.dev.set_exc_info,
            _mask_event,
            _masked(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

"""Structured logging: JSON lines for machines, a readable console for people.

Every event can carry run_id / pipeline / stream (bound with
``structlog.contextvars``), and every rendered line passes through the secret
mask last, so a token that slipped into an error message still never reaches
a log line.

stocksync's events and the records of every library that logs through the
standard ``logging`` module (APScheduler, httpx, Alembic, SQLAlchemy, Python
warnings…) leave through one handler on the root logger, so the stream stays one
JSON object per line (``event``, ``level``, ``logger``, ``timestamp``), masked the
same way. Libraries log from WARNING up; with ``debug`` from INFO (httpx's request
lines, APScheduler's job runs), SQLAlchemy always from WARNING (its INFO is every
SQL statement).
"""

from __future__ import annotations

import json
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
#: the stdlib logger stocksync's own events go through (unnamed loggers included)
OWN_LOGGER = "stocksync"
#: libraries whose INFO is too much even under ``debug`` (SQLAlchemy: every statement)
_QUIET = ("sqlalchemy",)

_handler: logging.Handler | None = None


def library_level(level: str) -> int:
    """The threshold for other libraries' records at stocksync's ``level``.

    WARNING unless stocksync logs at ``debug`` (then INFO) or ``error`` (then ERROR).
    """
    own = _LEVELS.get(level, logging.INFO)
    return logging.INFO if own == logging.DEBUG else max(own, logging.WARNING)


def _mask_event(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = mask(value)
        elif isinstance(value, BaseException):
            event[key] = mask(f"{type(value).__name__}: {value}")
    return event


def _strip_message(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A library message without its trailing newline (``warnings`` ends each with one)."""
    if isinstance(event.get("event"), str):
        event["event"] = event["event"].rstrip()
    return event


def _masked(renderer: Any) -> Any:
    """``renderer`` whose output passes through ``mask()`` (the console renderer formats
    tracebacks itself, after ``_mask_event`` has run)."""

    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        rendered = renderer(logger, name, event)
        return mask(rendered) if isinstance(rendered, str) else rendered

    return render


class _CurrentStderr(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is at the time of the record (as logging's
    last-resort handler does), so a test runner swapping stderr never leaves it
    writing to a closed stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def _renderer(json_lines: bool, colors: bool) -> Any:
    if json_lines:
        # Chinese SKU and warehouse names stay readable: no \uXXXX escapes
        return structlog.processors.JSONRenderer(serializer=json.dumps, ensure_ascii=False)
    return structlog.dev.ConsoleRenderer(colors=colors)


def _handler_for(stream: Any, renderer: Any, shared: list[Any]) -> logging.Handler:
    """The root handler: library records get ``shared`` first, as stocksync's events did;
    then both are masked and rendered the same way."""
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_strip_message, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _mask_event,
                _masked(renderer),
            ],
        )
    )
    return handler


def _logger_factory(*args: Any) -> logging.Logger:
    """stdlib loggers for structlog: the given name, else ``stocksync`` (never the root)."""
    return logging.getLogger(str(args[0]) if args else OWN_LOGGER)


def configure(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: Any = None,
) -> None:
    """Configure structlog and the root logger for the process (idempotent; reload may call
    it again). ``stream``: where lines go (default: the current ``sys.stderr``)."""
    global _handler
    out = stream or sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    json_lines = fmt == "json" or (fmt == "auto" and not tty)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if json_lines else structlog.dev.set_exc_info,
    ]
    handler = _handler_for(stream, _renderer(json_lines, colors=tty), shared)
    own = _LEVELS.get(level, logging.INFO)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    root.setLevel(library_level(level))
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(library_level(level), logging.WARNING))
    logging.getLogger(OWN_LOGGER).setLevel(own)
    logging.captureWarnings(True)  # a library's warnings.warn() becomes a JSON line too
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(own),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=False,
    )

"""Library records (stdlib ``logging``) leave as stocksync's own events do: one masked JSON
line each, at the documented levels (issue 16, defect 8)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from sync.service import logging as sync_logging
from sync.settings import register_secret

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-Lib-record-5521"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    sync_logging.configure("info", fmt="json")  # back to the process default


def _configured(stream: io.StringIO, level: str = "info", fmt: str = "json") -> list[str]:
    sync_logging.configure(level, fmt=fmt, stream=stream)  # type: ignore[arg-type]
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("level", "logger", "record_level", "shown"),
    [
        ("info", "apscheduler.scheduler", logging.WARNING, True),
        ("info", "httpx", logging.INFO, False),  # a line per request: only with debug
        ("debug", "httpx", logging.INFO, True),
        ("debug", "apscheduler.executors.default", logging.DEBUG, False),
        ("debug", "sqlalchemy.engine.Engine", logging.INFO, False),  # every SQL statement
        ("debug", "sqlalchemy.pool", logging.WARNING, True),
        ("error", "apscheduler.scheduler", logging.WARNING, False),
        ("error", "alembic.runtime.migration", logging.ERROR, True),
    ],
)
def test_library_levels(
    lines: io.StringIO, level: str, logger: str, record_level: int, shown: bool
) -> None:
    _configured(lines, level)
    logging.getLogger(logger).log(record_level, "a library record")
    assert ("a library record" in lines.getvalue()) is shown


def test_own_events_keep_their_level_beside_the_libraries(lines: io.StringIO) -> None:
    _configured(lines, "info")
    structlog.get_logger("stocksync.daemon").info("own_info")
    structlog.get_logger("stocksync.daemon").debug("own_debug")
    structlog.get_logger().info("unnamed_info")  # an unnamed logger is stocksync's, not root's
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [(e["event"], e["logger"]) for e in events] == [
        ("own_info", "stocksync.daemon"),
        ("unnamed_info", "stocksync"),
    ]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_library_records_are_masked(lines: io.StringIO, fmt: str) -> None:
    register_secret(TOKEN)
    _configured(lines, "info", fmt)
    logging.getLogger("alembic").warning(
        "connect to %s with %s", "mysql://ops:Db-pw-in-record@h:3306/d", TOKEN
    )
    try:
        raise ConnectionError(f"refused for postgresql://u:Exc-pw-9@h/d ({TOKEN})")
    except ConnectionError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised")
    text = lines.getvalue()
    assert "mysql://ops:***@h:3306/d with ***" in text and "postgresql://u:***@h/d" in text
    assert "Db-pw-in-record" not in text and "Exc-pw-9" not in text and TOKEN not in text
    if fmt == "json":
        events = [json.loads(line) for line in text.splitlines()]
        assert [e["logger"] for e in events] == ["alembic", "apscheduler.executors.default"]
        assert "ConnectionError" in events[1]["exception"]


def test_json_lines_keep_chinese(lines: io.StringIO) -> None:
    _configured(lines, "info")
    structlog.get_logger("stocksync.alerts").warning("stock_low", warehouse="成品仓")
    logging.getLogger("apscheduler.scheduler").warning("仓库 %s 跳过", "成品仓")
    text = lines.getvalue()
    assert '"warehouse": "成品仓"' in text and '"event": "仓库 成品仓 跳过"' in text
    assert "\\u" not in text


def test_a_python_warning_is_a_json_line_too() -> None:
    """``warnings.warn`` in a library (SQLAlchemy's SAWarning…) writes to stderr itself."""
    code = (
        "import warnings\n"
        "from sync.service.logging import configure\n"
        "configure('info', 'json')\n"
        "warnings.warn('a library warning', UserWarning, stacklevel=1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "always"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["logger"], e["level"]) for e in events] == [("py.warnings", "warning")], events
    assert events[0]["event"].endswith("UserWarning: a library warning")


def test_reconfiguring_replaces_the_handler(lines: io.StringIO) -> None:
    _configured(lines, "info")
    _configured(lines, "info")  # a reload configures again: still one line per record
    logging.getLogger("apscheduler.scheduler").warning("once")
    assert lines.getvalue().count("once") == 1


def test_a_webhook_token_never_reaches_a_debug_log_line(lines: io.StringIO) -> None:
    """httpx logs each request's URL at INFO (shown with debug): a webhook's path is its token."""
    import httpx

    from sync.config import WebhookSettings
    from sync.webhook import Webhook

    token = "T0AB/B0CD/Hook-Token-8817"
    settings = WebhookSettings(url=f"https://hooks.example.com/services/{token}?sig=Sig-4410")
    _configured(lines, "debug")
    Webhook(settings, transport=httpx.MockTransport(lambda _r: httpx.Response(200))).deliver(
        {"alert_id": "a-1"}
    )
    text = lines.getvalue()
    assert "HTTP Request: POST https://hooks.example.com/***?***" in text
    assert "Hook-Token-8817" not in text and "Sig-4410" not in text


def test_a_short_webhook_path_is_no_token(lines: io.StringIO) -> None:
    """``/hook`` is a route, not a credential: masking it would garble ``webhook`` everywhere."""
    from sync.config import WebhookSettings
    from sync.settings import mask

    WebhookSettings(url="http://127.0.0.1:8080/hook")
    assert mask("alerts webhook answered HTTP 500") == "alerts webhook answered HTTP 500"

"""Pipelines on memory connectors with a movable clock, and a loopback webhook receiver."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.model import Movement, MovementKind
from sync.runtime import Pipeline, build_pipeline
from sync.state import StateStore
from tests.conftest import Clock


def memory_yaml(name: str, extra: str = "", state_url: str = "sqlite://") -> str:
    return (
        f"state: {{url: '{state_url}'}}\n"
        "pipelines:\n"
        f"  - name: {name}\n"
        "    erp: {type: memory}\n"
        "    crm: {type: memory-crm}\n"
        "    pull: {overlap_s: 0}\n" + extra
    )


@dataclass
class MemoryPipeline:
    pipeline: Pipeline
    erp: MemoryErp
    crm: MemoryCrm
    clock: Clock
    n: list[int] = field(default_factory=lambda: [0])

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def store(self) -> StateStore:
        return self.pipeline.store

    def move(
        self, sku: str, qty: str, wh: str = "W1", kind: MovementKind | None = None
    ) -> Movement:
        self.n[0] += 1
        self.clock.advance(1)
        q = Decimal(qty)
        k = kind or (MovementKind.RECEIPT if q >= 0 else MovementKind.SHIPMENT)
        return self.erp.put(
            Movement(f"memory:d:{self.n[0]}:1", k, sku, wh, q, self.clock.now, self.clock.now)
        )


MakePipeline = Callable[..., MemoryPipeline]


@pytest.fixture
def make_pipeline(store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    yield from pipelines_on(store, clock)


def pipelines_on(store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    """A factory of memory pipelines on ``store``; registries are cleaned up afterwards."""
    names: list[str] = []

    def factory(extra: str = "") -> MemoryPipeline:
        name = f"p{uuid.uuid4().hex[:10]}"
        names.append(name)
        settings = cfg.parse(memory_yaml(name, extra))
        memory_source.REGISTRY[name] = MemoryErp(now=clock)
        memory_sink.REGISTRY[name] = MemoryCrm()
        p = build_pipeline(settings.pipeline(name), store, now=clock)
        return MemoryPipeline(p, memory_source.REGISTRY[name], memory_sink.REGISTRY[name], clock)

    yield factory
    for name in names:
        memory_source.REGISTRY.pop(name, None)
        memory_sink.REGISTRY.pop(name, None)


class WebhookReceiver:
    """An HTTP server on loopback that records JSON POSTs and answers ``status``.

    ``stop()`` closes the port (connections are refused), ``start()`` opens it again.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        #: the Idempotency-Key header of every accepted POST
        self.keys: list[str | None] = []
        self.attempts = 0
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.attempts += 1
                if receiver.status < 300:
                    receiver.received.append(body)
                    receiver.keys.append(self.headers.get("Idempotency-Key"))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.handler = Handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.serving = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.serving = False

    def start(self) -> None:
        """Serve (again, on the same port after ``stop()``)."""
        if self.server.socket.fileno() == -1:  # closed by stop(): a new one on the port
            self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        server = self.server
        threading.Thread(target=lambda: server.serve_forever(0.05), daemon=True).start()
        self.serving = True


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    if receiver.serving:
        receiver.stop()


_runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    """Run ``stocksync ARGS`` in-process; returns (exit code, stdout)."""
    from sync.cli.main import app

    result = _runner.invoke(app, list(args))
    # the command pointed structlog at the runner's stderr, which is closed now
    structlog.reset_defaults()
    return result.exit_code, result.stdout


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)

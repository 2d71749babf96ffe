"""Shared fixtures: a fake clock driving both the emulator and the connector, no real sleeping."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors._emulator import transport_for
from connectors.fxiaoke.emulator import FxiaokeEmulator, build_emulator
from connectors.fxiaoke.sink import FxiaokeSettings, FxiaokeSink, build
from sync.ports import ConnectorContext, MemoryTokenCache, TokenCache

BASE_URL = "http://fxiaoke.test"


class FakeClock:
    """Wall clock for the emulator and the connector; ``sleep`` moves time instead of waiting."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)) -> None:
        self.t = start.timestamp()
        self.slept: list[float] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def settings_for(emulator: FxiaokeEmulator, **overrides: Any) -> FxiaokeSettings:
    values: dict[str, Any] = {
        **emulator.crm_settings(BASE_URL),
        **overrides,
    }
    return FxiaokeSettings.model_validate(values)


SinkFactory = Callable[..., FxiaokeSink]


class RecordingTransport(httpx.BaseTransport):
    """Delegates to the emulator and keeps every request (path, query, JSON body)."""

    def __init__(self, emulator: FxiaokeEmulator) -> None:
        self._inner = transport_for(emulator)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append((request.url.path, dict(request.url.params), body))
        return self._inner.handle_request(request)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for p, _, body in self.requests if p == path]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> FxiaokeEmulator:
    return build_emulator("demo", clock=clock.time)


@pytest.fixture
def make_sink(emulator: FxiaokeEmulator, clock: FakeClock) -> Iterator[SinkFactory]:
    """Build sinks against ``emulator`` in-process; closed at teardown."""
    built: list[FxiaokeSink] = []

    def factory(
        *,
        transport: Any = "emulator",
        token_cache: TokenCache | None = None,
        **overrides: Any,
    ) -> FxiaokeSink:
        context = ConnectorContext(
            now=clock.now,
            sleep=clock.sleep,
            token_cache=token_cache or MemoryTokenCache(),
            # "emulator": in-process WSGI; None: httpx's default transport (for respx)
            http_transport=transport_for(emulator) if transport == "emulator" else transport,
        )
        sink = build(settings_for(emulator, **overrides), context)
        built.append(sink)
        return sink

    yield factory
    for sink in built:
        sink.close()


@pytest.fixture
def sink(make_sink: SinkFactory) -> FxiaokeSink:
    return make_sink()

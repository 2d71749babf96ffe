"""Shared fixtures: an emulator on a manual clock and a source wired to it in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.settings import K3CloudSettings
from connectors.k3cloud.source import K3CloudSource, build
from sync.ports import ConnectorContext


class StepClock:
    """ERP local time that advances one second per reading (FModifyDate resolution)."""

    def __init__(self, start: datetime = datetime(2024, 5, 1, 9, 0, 0)) -> None:
        self.current = start

    def __call__(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def emulator(clock: StepClock) -> K3CloudEmulator:
    return K3CloudEmulator(now=clock)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def settings_for(emulator: K3CloudEmulator, **overrides: Any) -> K3CloudSettings:
    info = emulator.connection_info("http://k3.test")
    values: dict[str, Any] = {
        "server_url": info["url"],
        "acct_id": info["acct_id"],
        "username": info["username"],
        "app_id": info["app_id"],
        "app_secret": info["app_secret"],
        "max_attempts": 3,
        **overrides,
    }
    return K3CloudSettings.model_validate(values)


@pytest.fixture
def make_source(
    emulator: K3CloudEmulator, sleeps: Sleeps
) -> Iterator[Callable[..., K3CloudSource]]:
    made: list[K3CloudSource] = []

    def make(*, in_process: bool = True, **overrides: Any) -> K3CloudSource:
        context = ConnectorContext(
            now=lambda: datetime(2024, 5, 1, tzinfo=UTC),
            http_transport=transport_for(emulator) if in_process else None,
            sleep=sleeps,
        )
        source = build(settings_for(emulator, **overrides), context)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()

"""Fixtures for a real Tryton server (session-scoped, always stopped).

- ``tryton_server``: a started trytond on loopback over a fresh copy of the cached
  template database; a ``server.TrytonServer`` with ``url``, ``database``,
  ``username``, ``password``, ``rpc_url`` and ``settings(**overrides)``.
- ``tryton_proteus``: a proteus XML-RPC config logged in on that server.
- ``tryton_scenario``: runs the phase-1 documents once; returns their ids by name.
- ``tryton_source``: a TrytonSource on the server (after the scenario), closed after use.

Without trytond/proteus the tests are skipped — unless ``CI`` is set, where a
missing server is a failure, not a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.tryton import scenario
from tests.tryton import server as tryton


def require_trytond() -> None:
    reason = tryton.trytond_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the Tryton server cannot run: {reason}")
    pytest.skip(reason)


@contextmanager
def own_server(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[tryton.TrytonServer]:
    """A started trytond over a fresh copy of the template database, always stopped."""
    require_trytond()
    workdir: Path = tmp_path_factory.mktemp(name)
    tryton.prepare_workdir(workdir)
    with tryton.running_server(workdir) as server:
        yield server


@pytest.fixture(scope="session")
def tryton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tryton.TrytonServer]:
    with own_server(tmp_path_factory, "tryton") as server:
        yield server


@pytest.fixture(scope="session")
def tryton_proteus(tryton_server: tryton.TrytonServer) -> Iterator[Any]:
    with tryton.proteus_session(tryton_server) as config:
        yield config


@pytest.fixture(scope="session")
def tryton_scenario(tryton_proteus: Any) -> dict[str, int]:
    return scenario.initial_scenario(tryton_proteus)


@pytest.fixture
def tryton_source(
    tryton_server: tryton.TrytonServer, tryton_scenario: dict[str, int]
) -> Iterator[Any]:
    from connectors.tryton.source import TrytonSettings, build
    from sync.ports import ConnectorContext

    source = build(
        TrytonSettings(**tryton_server.settings()), ConnectorContext(sleep=lambda _s: None)
    )
    yield source
    source.close()

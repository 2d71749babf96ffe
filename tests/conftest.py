"""Shared fixtures: state stores on every backend this machine has, a movable clock."""

from __future__ import annotations

import atexit
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from sync.state import StateStore

settings.register_profile(
    "ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

IN_CI = bool(os.environ.get("CI"))


def _isolated(url: str) -> str:
    """A fresh schema (PostgreSQL) or database (MySQL/MariaDB) on the server, dropped at exit.

    Servers outlive test runs (CI reuses the machine's): every run gets its own
    namespace, so an old schema can never leak into a new run.
    """
    from sqlalchemy import text

    from sync.state.store import create_state_engine

    name = f"stocksync_test_{uuid.uuid4().hex[:10]}"
    engine = create_state_engine(url)
    is_pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE {'SCHEMA' if is_pg else 'DATABASE'} {name}"))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"DROP {'SCHEMA' if is_pg else 'DATABASE'} {name}{' CASCADE' if is_pg else ''}"
                )
            )
        engine.dispose()

    atexit.register(drop)
    parsed = make_url(url)
    if is_pg:
        return parsed.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False
        )
    return parsed.set(database=name).render_as_string(hide_password=False)


_ISOLATED: dict[str, str] = {}


def server_url(env: str, what: str) -> str:
    """A private namespace on a real database server for this test run.

    Skips with the reason when the server is not configured or unreachable;
    under CI (``CI`` set) it fails instead, so those tests cannot silently vanish.
    """
    url = os.environ.get(env)
    if not url:
        if IN_CI:
            pytest.fail(f"{env} is not set: CI must run the {what} tests")
        pytest.skip(f"{env} not set: {what} tests need a running server")
    try:
        if env not in _ISOLATED:
            _ISOLATED[env] = _isolated(url)
        url = _ISOLATED[env]
        store = StateStore(url)
        store.upgrade()
    except Exception as exc:  # the reason is the point of the message
        if IN_CI:
            pytest.fail(f"{what} at {env} is unreachable under CI: {exc}")
        pytest.skip(f"{what} at {env} is unreachable: {exc}")
    store.close()
    return url


class Clock:
    """A clock tests move by hand (no sleeping)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


BACKENDS = ["sqlite", "postgresql", "mysql"]


def _backend_url(backend: str) -> str:
    if backend == "sqlite":
        return "sqlite://"
    if backend == "postgresql":
        return server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL")
    return server_url("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL")


@pytest.fixture(scope="module", params=BACKENDS)
def any_store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    """A migrated store per backend; tests isolate themselves with a fresh pipeline name."""
    store = StateStore(_backend_url(request.param))
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def store() -> Iterator[StateStore]:
    """A fresh in-memory SQLite store."""
    s = StateStore("sqlite://")
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def pipeline() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def shared_sqlite() -> Iterator[StateStore]:
    """One in-memory store for property tests; each example uses its own pipeline name."""
    s = StateStore("sqlite://")
    s.upgrade()
    yield s
    s.close()


@pytest.fixture(scope="module")
def server_store() -> Iterator[Callable[[str], StateStore]]:
    """Opens (once per module) a migrated store on a real server: "postgresql" or "mysql".

    Skips with the reason when the server is not configured, fails under CI.
    """
    cache: dict[str, StateStore] = {}

    def get(backend: str) -> StateStore:
        if backend not in cache:
            store = StateStore(_backend_url(backend))
            store.upgrade()
            cache[backend] = store
        return cache[backend]

    yield get
    for s in cache.values():
        s.close()

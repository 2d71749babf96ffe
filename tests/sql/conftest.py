"""ERP databases for the SQL emulators: SQLite (a file), and the real PostgreSQL and MariaDB.

The servers' namespace is this run's private schema/database (``tests.conftest.server_url``);
each test drops the tables it created, so tests and examples never see each other's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from tests.conftest import server_url

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.pg),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


def erp_url(backend: str, tmp_path: Path) -> str:
    """A SQLAlchemy URL (with its driver) for an ERP database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'erp.db'}"
    if backend == "postgresql":
        url = make_url(server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL"))
        url = url.set(drivername="postgresql+psycopg")
    else:
        url = make_url(server_url("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL"))
        url = url.set(drivername="mysql+pymysql")
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def erp_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an ERP database of ``backend``; the test drops what it creates."""
    engine = create_engine(erp_url(backend, tmp_path))
    yield engine
    engine.dispose()

"""Engines for the state database: SQLite (WAL), PostgreSQL (psycopg 3), MySQL/MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from sync.errors import ConfigError, ConfigProblem, StockSyncError
from sync.settings import mask, register_url_password

#: the drivers stocksync installs through an extra: driver → (database, extra)
DRIVER_EXTRAS = {"psycopg": ("PostgreSQL", "postgresql"), "pymysql": ("MySQL/MariaDB", "mysql")}
_DATABASES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "mariadb": "MySQL/MariaDB"}


def _missing_driver(backend: str, driver: str, exc: ImportError) -> StockSyncError:
    """The error for a state URL whose DBAPI driver cannot be imported."""
    database, extra = DRIVER_EXTRAS.get(driver, (_DATABASES.get(backend, backend), ""))
    install = f"pip install 'stocksync[{extra}]'" if extra else f"install the {driver} package"
    return StockSyncError(
        f"state.url uses {database} but the driver is not installed: {install}",
        hint=f"importing the driver {driver!r} failed: {exc}",
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_state_engine(url: str) -> Engine:
    """An engine for ``url`` with our defaults (SQLite WAL, psycopg 3, PyMySQL).

    The URL's password is registered for masking first, so no error shows it.
    Raises ``ConfigError`` for a URL that is not one of these databases and
    ``StockSyncError`` naming the extra to install when its driver is missing
    (PostgreSQL and MySQL drivers are extras: ``stocksync[postgresql]``, ``stocksync[mysql]``).
    """
    register_url_password(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            [ConfigProblem("state.url", f"not a database URL: {mask(url)!r}")]
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    kwargs: dict[str, Any] = {"future": True}
    if backend == "sqlite":
        database = parsed.database or ""
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    elif backend not in ("postgresql", "mysql", "mariadb"):
        raise ConfigError(
            [
                ConfigProblem(
                    "state.url",
                    f"unsupported database {backend!r}; use sqlite, postgresql or mysql/mariadb",
                )
            ]
        )
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)  # imports the driver
    except ImportError as exc:
        raise _missing_driver(backend, parsed.get_driver_name(), exc) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine

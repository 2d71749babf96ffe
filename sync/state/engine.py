"""Engines for the state database: SQLite (WAL), PostgreSQL (psycopg 3), MySQL/MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from sync.errors import ConfigError, ConfigProblem, StockSyncError
from sync.settings import mask, mask_url, register_url_password

#: the backends stocksync runs on, as the URL scheme names them
SUPPORTED = "sqlite, postgresql, mysql/mariadb"
_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")

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


def state_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a state database URL (password masked), or None when it can.

    Checked by the config loader (so ``check-config`` refuses it with its path) and again
    when an engine is made: only the supported backends with a driver SQLAlchemy can load.
    """
    from sqlalchemy.exc import NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        example = "e.g. sqlite:///stocksync.db"
        return f"not a database URL: {mask(url)!r}; supported: {SUPPORTED} ({example})"
    backend = parsed.get_backend_name()
    if backend not in _BACKENDS:
        fix = " (write postgresql://)" if backend == "postgres" else ""
        shown = mask_url(url)
        return f"unsupported database {backend!r} in {shown!r}; supported: {SUPPORTED}{fix}"
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        return f"unknown driver {parsed.get_driver_name()!r} for {backend} in {mask_url(url)!r}"
    return None


def sqlite_file(url: str | URL) -> Path | None:
    """The resolved file of a SQLite URL (``file:`` URIs too); None for memory or a server.

    Symlinks, ``..`` and a relative path (against the working directory) are resolved.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if parsed.query.get("uri") == "true" and database.startswith("file:"):  # a SQLite URI
        if parsed.query.get("mode") == "memory" or database.startswith("file::memory:"):
            return None
        database = database[len("file:") :]
    if database in ("", ":memory:"):
        return None
    return Path(database).resolve()


class StateDatabaseMissing(StockSyncError):
    """A command that only reads was pointed at a state database that does not exist."""


#: pooled connections beside one per worker thread: scrapes, the daemon's own reads
POOL_RESERVE = 4


def pool_options(workers: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Pool arguments for a server backend where ``workers`` threads may each hold one
    connection: every worker finds one waiting (``workers + POOL_RESERVE`` kept open), and
    twice as many again may be opened for a moment (a pull applies two pages at once,
    ``sync.pipeline``, and a job may read beside its transaction)."""
    return {
        "pool_size": workers + POOL_RESERVE,
        "max_overflow": 2 * workers,
        "pool_timeout": timeout_s,
    }


def create_state_engine(
    url: str, *, create: bool = True, pool: dict[str, Any] | None = None
) -> Engine:
    """An engine for ``url`` with our defaults (SQLite WAL, psycopg 3, PyMySQL; READ
    COMMITTED on every server, as PostgreSQL's default).

    ``pool`` (from ``pool_options``) sizes the connection pool of a server backend;
    SQLite ignores it. Without it SQLAlchemy's default (5 + 10 overflow, 30 s wait) applies.

    The URL's password is registered for masking first, so no error shows it. With
    ``create=False`` a SQLite file that does not exist raises ``StateDatabaseMissing``
    instead of being created (a typo in the URL must not give an empty database).
    Raises ``ConfigError`` for a URL that is not one of the supported databases and
    ``StockSyncError`` naming the extra to install when its driver is missing
    (PostgreSQL and MySQL drivers are extras: ``stocksync[postgresql]``, ``stocksync[mysql]``).
    """
    register_url_password(url)
    problem = state_url_problem(url)
    if problem is not None:
        raise ConfigError([ConfigProblem("state.url", problem)])
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    kwargs: dict[str, Any] = {"future": True}
    if backend == "sqlite":
        path = sqlite_file(url)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if path is None:
            kwargs["poolclass"] = StaticPool
        elif not create and not path.exists():
            raise StateDatabaseMissing(
                f"the state database {path} does not exist",
                hint="check the path in STOCKSYNC_STATE_URL or state.url; "
                "`stocksync db upgrade` (or `stocksync run`) creates it",
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs["pool_pre_ping"] = True
        kwargs.update(pool or {})
        if backend in ("mysql", "mariadb"):
            # PostgreSQL's default: each statement sees what has committed before it. Under
            # InnoDB's REPEATABLE READ a transaction keeps the snapshot of its first read, so a
            # page that waited for the page before (``sync.pipeline``) would not see its
            # conflicts or its cursor, and gap locks would make the two wait on each other.
            kwargs["isolation_level"] = "READ COMMITTED"
    try:
        engine = create_engine(parsed, **kwargs)  # imports the driver
    except ImportError as exc:
        raise _missing_driver(backend, parsed.get_driver_name(), exc) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine

"""Opening the ERP database read-only, with a statement timeout; database errors → our classes.

Per dialect (each set on every new connection, so a reconnect keeps it):
- PostgreSQL: ``SET statement_timeout`` and ``SET SESSION CHARACTERISTICS AS TRANSACTION
  READ ONLY`` (a write fails with SQLSTATE 25006).
- MariaDB: ``SET SESSION max_statement_time`` (seconds; MySQL: ``max_execution_time`` in
  ms, SELECTs only) and ``SET SESSION TRANSACTION READ ONLY`` (error 1792 on a write).
- SQLite: the file is opened through a ``mode=ro`` URI; a progress handler aborts a
  statement running longer than the timeout (``interrupted``), and the busy timeout is the
  same, so a lock the ERP holds is waited for that long at most ("database is locked").
- SQL Server: the driver's query timeout (pymssql ``timeout``, pyodbc ``Connection.timeout``);
  read-only is the login's business (a login with SELECT only; ``ApplicationIntent=ReadOnly``
  on an availability group).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from sync.errors import ConfigError, ConfigProblem, PermanentError, StockSyncError, TransientError
from sync.settings import mask

#: SQLite: how many VM steps between two looks at the clock
_SQLITE_STEPS = 10_000

# PostgreSQL SQLSTATEs: classes 08 (connection), 40 (rollback: deadlock, serialization),
# 53 (resources), 57 (cancel, shutdown) pass; 42501 is a permission; other 42 are the mapping's
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
# MariaDB/MySQL error numbers
_MY_TRANSIENT = {1040, 1053, 1205, 1213, 1969, 2002, 2003, 2006, 2013, 3024, 4031}
_MY_PERMISSION = {1044, 1045, 1142, 1143, 1227, 1792}
_MY_MAPPING = {1054, 1064, 1146, 1049}
_SQLITE_TRANSIENT = ("interrupted", "database is locked", "database table is locked", "busy")
_SQLITE_MAPPING = ("no such table", "no such column", "syntax error", "ambiguous column")


def read_only_url(url: str | URL) -> URL:
    """The URL to open: a SQLite file becomes a ``file:…?mode=ro&uri=true`` URI; a URL naming
    no driver gets the one stocksync ships (psycopg 3, PyMySQL), as the state URL does."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        return parsed.set(drivername=f"{backend}+pymysql")
    if backend != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return parsed
    query = dict(parsed.query)
    database = parsed.database
    if query.get("uri") != "true":
        database = f"file:{database}"
    query.update({"mode": "ro", "uri": "true"})
    return parsed.set(database=database, query=query)


def open_engine(url: str, *, statement_timeout_s: float) -> Engine:
    """An engine on the ERP database whose every connection is read-only where the dialect
    allows and cuts statements after ``statement_timeout_s``.

    Raises ConfigError when the URL's driver is not installed (SQL Server: the ``mssql`` extra).
    """
    target = read_only_url(url)
    backend = target.get_backend_name()
    connect_args: dict[str, Any] = {}
    if target.get_driver_name() == "pymssql":
        connect_args = {"timeout": max(1, round(statement_timeout_s))}
    elif backend == "sqlite":
        connect_args = {"timeout": statement_timeout_s}  # the busy timeout, seconds
    try:
        engine = create_engine(target, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as exc:
        hint = " (pip install 'stocksync[mssql]')" if backend == "mssql" else ""
        raise ConfigError(
            [ConfigProblem("erp.url", f"the database driver is not installed: {exc}{hint}")]
        ) from None
    if backend == "postgresql":
        _on_connect(engine, _pg_session(statement_timeout_s))
    elif backend in ("mysql", "mariadb"):
        _on_connect(engine, _mysql_session(statement_timeout_s))
    elif backend == "sqlite":
        _sqlite_timeout(engine, statement_timeout_s)
    elif backend == "mssql" and target.get_driver_name() == "pyodbc":
        _on_connect(
            engine, lambda conn: setattr(conn, "timeout", max(1, round(statement_timeout_s)))
        )
    return engine


def _on_connect(engine: Engine, setup: Any) -> None:
    event.listen(engine, "connect", lambda dbapi_conn, _record: setup(dbapi_conn))


def _pg_session(timeout_s: float) -> Any:
    def setup(conn: Any) -> None:
        cur = conn.cursor()
        cur.execute(f"SET statement_timeout = {max(1, round(timeout_s * 1000))}")
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        conn.commit()  # a SET inside a transaction rolled back later would be undone

    return setup


def _mysql_session(timeout_s: float) -> Any:
    def setup(conn: Any) -> None:
        cur = conn.cursor()
        try:
            cur.execute(f"SET SESSION max_statement_time = {timeout_s:.3f}")  # MariaDB
        except Exception:  # MySQL names it max_execution_time
            cur.execute(f"SET SESSION max_execution_time = {max(1, round(timeout_s * 1000))}")
        cur.execute("SET SESSION TRANSACTION READ ONLY")
        cur.close()

    return setup


def _sqlite_timeout(engine: Engine, timeout_s: float) -> None:
    """A progress handler per connection aborts a statement older than ``timeout_s``."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        started = [time.monotonic()]
        record.info["sql_started"] = started

        def handler() -> int:
            return 1 if time.monotonic() - started[0] > timeout_s else 0

        dbapi_conn.set_progress_handler(handler, _SQLITE_STEPS)

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, *_args: Any) -> None:
        started = conn.connection.info.get("sql_started")
        if started is not None:
            started[0] = time.monotonic()


def translate(exc: SQLAlchemyError, where: str) -> StockSyncError:
    """A database error as the decision it calls for; ``where`` names the stream or section
    (``erp.streams[0] (stream 'journal')``): a ConfigError's path is its part before a blank.
    Never shows the URL or the statement's parameters."""
    orig = getattr(exc, "orig", None)
    detail = _detail(exc, orig)
    if isinstance(exc, PoolTimeout) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return TransientError(f"{where}: database connection lost or busy: {detail}", where=where)
    kind = _classify(orig)
    if kind == "transient":
        return TransientError(f"{where}: {detail} (will retry)", where=where)
    if kind == "mapping":
        path, _, label = where.partition(" ")
        return ConfigError(
            [
                ConfigProblem(
                    path, f"{label + ': ' if label else ''}the database refused the query: {detail}"
                )
            ]
        )
    if kind == "permission":
        return PermanentError(
            f"{where}: the database refused: {detail}",
            hint="give the ERP login SELECT on the tables the streams read",
            where=where,
        )
    if isinstance(exc, DBAPIError) and type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return TransientError(f"{where}: {detail} (will retry)", where=where)
    return PermanentError(f"{where}: {detail}", where=where)


def _detail(exc: SQLAlchemyError, orig: Any) -> str:
    """The driver's first line of message, masked (SQLAlchemy's own adds SQL and parameters)."""
    text = str(orig if orig is not None else exc).strip()
    return mask(text.splitlines()[0]) if text else type(exc).__name__


def _classify(orig: Any) -> str | None:
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate == "42501" or sqlstate == "25006":
            return "permission"
        if sqlstate.startswith("42"):
            return "mapping"
        if sqlstate.startswith(_PG_TRANSIENT_CLASSES):
            return "transient"
        return None
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        number = args[0]
        if number in _MY_TRANSIENT:
            return "transient"
        if number in _MY_PERMISSION:
            return "permission"
        if number in _MY_MAPPING:
            return "mapping"
        return None
    message = str(orig or "").lower()
    if any(m in message for m in _SQLITE_TRANSIENT):
        return "transient"
    if any(m in message for m in _SQLITE_MAPPING):
        return "mapping"
    if "readonly" in message or "read-only" in message:
        return "permission"
    return None

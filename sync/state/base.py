"""The connection handling every part of the state store shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
)
from sqlalchemy.exc import OperationalError

from sync.errors import TransientError
from sync.settings import mask
from sync.state.engine import create_state_engine
from sync.state.tx import Tx


class StoreBase:
    """Owns the engine; hands out transactions (``Tx``) and plain connections."""

    def __init__(
        self, url: str, *, create: bool = True, pool: dict[str, Any] | None = None
    ) -> None:
        """``create=False``: a SQLite file that does not exist raises ``StateDatabaseMissing``;
        ``pool``: connection pool arguments for a server backend (``pool_options``)."""
        self.url = url
        self.engine = create_state_engine(url, create=create, pool=pool)
        self.dialect = self.engine.dialect.name
        #: the driver's own operational error, raised by raw cursors unwrapped
        self._driver_errors: tuple[type[BaseException], ...] = _driver_operational(self.engine)
        #: the replica whose jobs write through this store (``runs.runner``); None for a
        #: one-off command
        self.runner: str | None = None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction; an operational failure of the database (connection lost, lock
        wait timeout, deadlock) raises ``TransientError``, whether it came through
        SQLAlchemy or from a driver cursor of the bulk statements (``sync.state.bulk``)."""
        try:
            with self.engine.begin() as conn:
                yield Tx(conn)
        except OperationalError as exc:
            raise TransientError(f"state database: {mask(str(exc.orig))}") from exc
        except self._driver_errors as exc:
            raise TransientError(f"state database: {mask(str(exc))}") from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn


def _driver_operational(engine: Engine) -> tuple[type[BaseException], ...]:
    """The DB-API ``OperationalError`` class of ``engine``'s driver (none for SQLite, whose
    writes all go through SQLAlchemy)."""
    if engine.dialect.name == "sqlite":
        return ()
    dbapi = engine.dialect.loaded_dbapi
    error = getattr(dbapi, "OperationalError", None)
    return (error,) if isinstance(error, type) and issubclass(error, BaseException) else ()

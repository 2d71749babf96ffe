"""StateStore: the only code that touches the state database.

Typed rows (dataclasses) cross this boundary, never SQLAlchemy rows. Writes
that must be atomic together (a ledger page, a push result) go through
``transaction()``, which yields a ``Tx`` bound to one connection. The reads are
grouped by concern in ``ledger_reads``, ``alert_reads``, ``outbox_reads``,
``ops_reads`` and ``freshness_reads``; ``explain_reads`` serves the operators' tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError, ProgrammingError

from sync.errors import StockSyncError, TransientError
from sync.settings import mask, mask_url
from sync.state.alert_reads import AlertReads
from sync.state.demand_reads import DemandReads
from sync.state.engine import StateDatabaseMissing, create_state_engine
from sync.state.explain_reads import BaselineRow, ExplainReads
from sync.state.freshness_reads import FreshnessInputs, FreshnessReads
from sync.state.ledger_reads import LedgerReads
from sync.state.ops_reads import OperationsReads
from sync.state.outbox_reads import OutboxReads
from sync.state.rows import (
    ALERT,
    BLOCKED,
    DEAD,
    LEVEL,
    MOVEMENT,
    OUTBOX_STATES,
    PENDING,
    UNCERTAIN,
    AlertEventRow,
    AlertState,
    Binding,
    ConflictRow,
    CursorRow,
    LedgerLine,
    OutboxRow,
    PushLogEntry,
    RunRow,
    StoredMovement,
    StoredPlan,
    display_ref,
    level_ref,
    parse_level_ref,
)
from sync.state.tx import Tx

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = [
    "ALERT",
    "BLOCKED",
    "DEAD",
    "LEVEL",
    "MOVEMENT",
    "OUTBOX_STATES",
    "PENDING",
    "UNCERTAIN",
    "AlertEventRow",
    "AlertState",
    "BaselineRow",
    "Binding",
    "ConflictRow",
    "CursorRow",
    "FreshnessInputs",
    "LedgerLine",
    "OutboxRow",
    "PushLogEntry",
    "RunRow",
    "StateDatabaseMissing",
    "StateReadOnly",
    "StateStore",
    "StoredMovement",
    "StoredPlan",
    "Tx",
    "create_state_engine",
    "display_ref",
    "level_ref",
    "parse_level_ref",
]


#: driver codes of "no such database": PostgreSQL SQLSTATE, MySQL/MariaDB error number
_PG_NO_DATABASE = "3D000"
_MYSQL_NO_DATABASE = 1049


class StateReadOnly(StockSyncError):
    """The state database refuses writes: the daemon cannot keep the ledger or the outbox."""


#: libpq's message when the database is missing (psycopg sets no SQLSTATE on a failed connect)
_PG_NO_DATABASE_TEXT = re.compile(r'FATAL:\s+database "[^"]*" does not exist')


#: the server answered and refused the login: no point waiting for it (MySQL 1045, 1044)
_PG_LOGIN_REFUSED = re.compile(
    r'password authentication failed|role "[^"]*" does not exist|no pg_hba\.conf entry'
)
_MYSQL_LOGIN_REFUSED = (1044, 1045)


#: MySQL/MariaDB refusing a write: command denied (no CREATE/ALTER/UPDATE grant), server in
#: --read-only mode, a read-only transaction, a read-only table
_MYSQL_READ_ONLY = (1142, 1290, 1792, 1036)


def _mysql_code(exc: OperationalError) -> object:
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    return args[0] if args else None


def _login_refused(exc: OperationalError) -> bool:
    orig = exc.orig
    if _PG_LOGIN_REFUSED.search(str(orig)):
        return True
    return _mysql_code(exc) in _MYSQL_LOGIN_REFUSED


def _missing_database(exc: OperationalError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_NO_DATABASE or _PG_NO_DATABASE_TEXT.search(str(orig)):
        return True
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] == _MYSQL_NO_DATABASE


class StateStore(
    LedgerReads,
    AlertReads,
    OutboxReads,
    OperationsReads,
    FreshnessReads,
    ExplainReads,
    DemandReads,
):
    """The state database: ledger, levels, cursors, outbox, bindings, conflicts, runs,
    push log."""

    # -- schema ---------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> str | None:
        """Create or upgrade the schema to the newest migration (or ``revision``); return
        the revision the database is at."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self._opening(), self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(781221)")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except (ProgrammingError, InternalError) as exc:  # no right to create or alter tables
            raise self._read_only(exc) from exc
        return self.revision()

    @contextmanager
    def _opening(self) -> Iterator[None]:
        """Connection failures as one sentence, and as what they mean for a caller: a missing
        database, a refused login, a database that refuses writes or a SQLite file that
        cannot be opened are ``StockSyncError`` (fix and restart); only a server not reached
        (or a locked SQLite file) is ``TransientError`` (worth waiting for)."""
        try:
            yield
        except OperationalError as exc:
            if "readonly database" in str(exc.orig) or _mysql_code(exc) in _MYSQL_READ_ONLY:
                raise self._read_only(exc) from exc
            if self.dialect == "sqlite" and "database is locked" not in str(exc.orig):
                # a local file does not come up later: a folder in its place, no access…
                raise StockSyncError(
                    f"cannot open the state database {mask_url(self.url)!r}: {exc.orig}",
                    hint="check the path in state.url (or STOCKSYNC_STATE_URL) and that this "
                    "user may read and write the file and its folder",
                ) from exc
            if _missing_database(exc):
                raise StateDatabaseMissing(
                    f"the state database {mask_url(self.url)!r} does not exist on its server",
                    hint="check the database name in STOCKSYNC_STATE_URL or state.url "
                    "(create the database first: stocksync creates tables, not databases)",
                ) from exc
            if _login_refused(exc):
                raise StockSyncError(
                    f"the state database {mask_url(self.url)!r} refused the login: "
                    f"{mask(str(exc.orig)).strip()}",
                    hint="check the user and password in STOCKSYNC_STATE_URL or state.url",
                ) from exc
            raise TransientError(
                f"cannot open the state database {mask_url(self.url)!r}: {mask(str(exc.orig))}",
                hint="check state.url (or STOCKSYNC_STATE_URL) and that the server is up",
            ) from exc

    def require_schema(self) -> None:
        """Raise ``StateDatabaseMissing`` unless stocksync's schema is there (commands that
        only read must never create it in a database or schema the URL names by mistake)."""
        with self._opening():
            revision = self.revision()
        if revision is None:
            raise StateDatabaseMissing(
                f"the state database {mask_url(self.url)!r} has no stocksync tables",
                hint="check STOCKSYNC_STATE_URL or state.url; `stocksync db upgrade` "
                "(or `stocksync run`) creates them",
            )

    def check_writable(self) -> None:
        """A write that is rolled back: raise ``StateReadOnly`` when the database refuses it.

        The daemon calls this at start-up, so a read-only file, folder, role or transaction
        mode stops it with the reason instead of failing every cycle for ever.
        """
        with self._opening():
            conn = self.engine.connect()
        try:
            with conn, conn.begin() as tx:
                conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
                tx.rollback()
        except DBAPIError as exc:
            raise self._read_only(exc) from exc

    def _read_only(self, exc: DBAPIError) -> StateReadOnly:
        reason = mask(str(exc.orig)).strip().splitlines()[0]
        return StateReadOnly(
            f"the state database {mask_url(self.url)!r} refuses writes ({reason})",
            hint="give the user stocksync runs as write access (file and folder permissions "
            "for SQLite, GRANT and no read-only mode on a server), or point "
            "STOCKSYNC_STATE_URL or state.url at a writable database",
        )

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

"""StateStore: the only code that touches the state database.

Typed rows (dataclasses) cross this boundary, never SQLAlchemy rows. Writes
that must be atomic together (a ledger page, a push result) go through
``transaction()``, which yields a ``Tx`` bound to one connection. The reads are
grouped by concern in ``ledger_reads``, ``alert_reads``, ``outbox_reads`` and
``ops_reads``; ``explain_reads`` serves the operators' tools.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import OperationalError

from sync.errors import TransientError
from sync.settings import mask, mask_url
from sync.state.alert_reads import AlertReads
from sync.state.engine import create_state_engine
from sync.state.explain_reads import BaselineRow, ExplainReads
from sync.state.ledger_reads import LedgerReads
from sync.state.ops_reads import OperationsReads
from sync.state.outbox_reads import OutboxReads
from sync.state.rows import (
    BLOCKED,
    DEAD,
    LEVEL,
    MOVEMENT,
    OUTBOX_STATES,
    PENDING,
    UNCERTAIN,
    AlertState,
    Binding,
    ConflictRow,
    CursorRow,
    LedgerLine,
    OutboxRow,
    PushLogEntry,
    RunRow,
    StoredMovement,
    display_ref,
    level_ref,
    parse_level_ref,
)
from sync.state.tx import Tx

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = [
    "BLOCKED",
    "DEAD",
    "LEVEL",
    "MOVEMENT",
    "OUTBOX_STATES",
    "PENDING",
    "UNCERTAIN",
    "AlertState",
    "BaselineRow",
    "Binding",
    "ConflictRow",
    "CursorRow",
    "LedgerLine",
    "OutboxRow",
    "PushLogEntry",
    "RunRow",
    "StateStore",
    "StoredMovement",
    "Tx",
    "create_state_engine",
    "display_ref",
    "level_ref",
    "parse_level_ref",
]


class StateStore(LedgerReads, AlertReads, OutboxReads, OperationsReads, ExplainReads):
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
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(781221)")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except OperationalError as exc:
            raise TransientError(
                f"cannot open the state database {mask_url(self.url)!r}: {mask(str(exc.orig))}",
                hint="check state.url (or STOCKSYNC_STATE_URL) and that the server is up",
            ) from exc
        return self.revision()

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

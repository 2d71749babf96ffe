"""The state database schema (SQLAlchemy Core).

Quantities are stored as integers in micro-units (``QTY_SCALE``): exact on every
backend (SQLite has no decimal type), fast to sum, and convertible to Decimal
without loss. Timestamps are stored as naive UTC and handed out timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Dialect,
    Double,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from sync.model import epoch_micros, qty_units

QTY_SCALE = 10**6
_QTY_EXP = Decimal(1).scaleb(-6)


def to_units(qty: Decimal) -> int:
    """Decimal → integer micro-units, exactly; QuantityScaleError beyond 6 dp (never rounds)."""
    return qty_units(qty)


def from_units(units: int | None) -> Decimal:
    """Integer micro-units → Decimal, normalised (``12`` not ``12.000000``)."""
    if units is None:
        return Decimal(0)
    whole, fraction = divmod(units, 1_000_000)
    if not fraction:  # the common case, and the cheap one
        return Decimal(whole)
    return Decimal(units).scaleb(-6).normalize()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
to_micros = epoch_micros


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in and out, stored as integer microseconds since the epoch (UTC).

    Integers compare and sort the same on every backend, cost nothing to convert,
    and let the ledger's hot path hand rows straight to the driver.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


metadata = MetaData()

NAME = 64
CODE = 128
KEY = 255
REF = 300

movements = Table(
    "movements",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    # byte-wise on PostgreSQL: documents' lines are key-prefix ranges (migration 0003)
    Column(
        "key", String(KEY).with_variant(String(KEY, collation="C"), "postgresql"), primary_key=True
    ),
    Column("stream", String(NAME), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("sku", String(CODE), nullable=False),
    Column("warehouse", String(CODE), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("source_updated_at", UtcDateTime, nullable=False),
    Column("doc_no", String(CODE), nullable=False, default=""),
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("reason", String(32), nullable=True),
    # one secondary index: every insert pays for each (rescan and report filter by date)
    Index("ix_movements_date", "pipeline", "occurred_at"),
    # SQLite: the rows live in the primary-key b-tree itself (one tree to update, not two)
    sqlite_with_rowid=False,
)

movement_versions = Table(
    "movement_versions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("pipeline", String(NAME), nullable=False),
    Column("key", String(KEY), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("sku", String(CODE), nullable=False),
    Column("warehouse", String(CODE), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("source_updated_at", UtcDateTime, nullable=False),
    Column("doc_no", String(CODE), nullable=False, default=""),
    Column("active", Boolean, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("reason", String(32), nullable=True),
    Index("ix_versions_key", "pipeline", "key", "version"),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("sku", String(CODE), primary_key=True),
    Column("warehouse", String(CODE), primary_key=True),
    Column("qty", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    #: 1 while the level has changed but has no outbox row for that change yet
    Column("push_pending", SmallInteger, nullable=False, server_default="0"),
)

baselines = Table(
    "baselines",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("sku", String(CODE), primary_key=True),
    Column("warehouse", String(CODE), primary_key=True),
    Column("qty", BigInteger, nullable=False),
    Column("set_at", UtcDateTime, nullable=False),
    Column("note", String(200), nullable=False, default=""),
)

#: the ERP's reserved stock per key, as of the last snapshot (nonzero rows only)
reserved_stock = Table(
    "reserved_stock",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("sku", String(CODE), primary_key=True),
    Column("warehouse", String(CODE), primary_key=True),
    Column("qty", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

cursors = Table(
    "cursors",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("stream", String(NAME), primary_key=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("tie_break", String(CODE), nullable=False, default=""),
    Column("advanced_at", UtcDateTime, nullable=False),
)

pipeline_meta = Table(
    "pipeline_meta",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("value", Text, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("pipeline", String(NAME), nullable=False),
    Column("target", String(16), nullable=False),
    Column("ref", String(REF), nullable=False),
    Column("state", String(16), nullable=False),
    Column("generation", Integer, nullable=False, default=1),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("pipeline", "target", "ref", name="uq_outbox_ref"),
    Index("ix_outbox_due", "pipeline", "state", "next_attempt_at"),
)

bindings = Table(
    "bindings",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("target", String(16), primary_key=True),
    Column("ref", String(REF), primary_key=True),
    Column("crm_id", String(CODE), nullable=False),
    Column("pushed_hash", String(32), nullable=True),
    Column("pushed_qty", BigInteger, nullable=True),
    Column("pushed_at", UtcDateTime, nullable=True),
)

conflicts = Table(
    "conflicts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("kind", String(32), nullable=False),
    Column("pipeline", String(NAME), nullable=False),
    Column("ref", String(REF), nullable=False),
    Column("erp_qty", BigInteger, nullable=True),
    Column("ledger_qty", BigInteger, nullable=True),
    Column("crm_qty", BigInteger, nullable=True),
    Column("pushed_qty", BigInteger, nullable=True),
    Column("detail", Text, nullable=False, default="{}"),
    Column("detected_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("occurrences", Integer, nullable=False, default=1),
    Column("resolution", String(32), nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_conflicts_open", "pipeline", "kind", "ref", "resolved_at"),
)

runs = Table(
    "runs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(36), nullable=False),
    Column("pipeline", String(NAME), nullable=False),
    Column("job", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("pulled", Integer, nullable=False, default=0),
    Column("applied", Integer, nullable=False, default=0),
    Column("pushed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    #: the replica that ran it (``sync.service.leases.replica_id``); None for one-off commands
    Column("runner", String(NAME), nullable=True),
    Index("ix_runs_pipeline", "pipeline", "job", "started_at"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("name", String(CODE), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

alert_states = Table(
    "alert_states",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("sku", String(CODE), primary_key=True),
    Column("warehouse", String(CODE), primary_key=True),
    Column("low", Boolean, nullable=False),
    Column("threshold", BigInteger, nullable=True),
    Column("qty", BigInteger, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)

#: a safety-stock crossing owed to the webhook: its body as sent, and when it was delivered
alert_events = Table(
    "alert_events",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("pipeline", String(NAME), nullable=False),
    Column("event", String(32), nullable=False),
    Column("sku", String(CODE), nullable=False),
    Column("warehouse", String(CODE), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
)

#: what each push attempt did (``stocksync explain``), pruned after push.log_retention_days
push_log = Table(
    "push_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("pipeline", String(NAME), nullable=False),
    Column("target", String(16), nullable=False),
    Column("ref", String(REF), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    #: created, updated, skipped, dropped, retrying, uncertain, dead or blocked
    Column("outcome", String(16), nullable=False),
    Column("crm_id", String(CODE), nullable=True),
    #: on hand and available as written (as the CRM shows them), micro-units
    Column("qty", BigInteger, nullable=True),
    Column("available", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_push_log_ref", "pipeline", "target", "ref", "at"),
    Index("ix_push_log_at", "pipeline", "at"),
)


#: the daemon processes sharing this state database (server backends), one heartbeat each
replicas = Table(
    "replicas",
    metadata,
    Column("replica", String(NAME), primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    #: leases it is short of its even share at its last heartbeat (others give theirs back)
    Column("wants", Integer, nullable=False, server_default="0"),
)

#: which replica runs which pipeline, until when (times from the database server's clock)
leases = Table(
    "leases",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("owner", String(NAME), nullable=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("taken_at", UtcDateTime, nullable=True),
    Column("takes", BigInteger, nullable=False, default=0),
    Index("ix_leases_owner", "owner"),
)

#: the nightly reorder plan per key (``sync.forecast.nightly``; estimates, base unit)
reorder_plans = Table(
    "reorder_plans",
    metadata,
    Column("pipeline", String(NAME), primary_key=True),
    Column("sku", String(CODE), primary_key=True),
    Column("warehouse", String(CODE), primary_key=True),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("model", String(32), nullable=False),
    Column("on_hand", Double, nullable=False),
    Column("available", Double, nullable=False),
    Column("lead_time_days", Integer, nullable=False),
    Column("service_level", Double, nullable=False),
    Column("demand_over_lead_time", Double, nullable=False),
    Column("safety_stock_needed", Double, nullable=False),
    Column("safety_stock_configured", Double, nullable=True),
    Column("reorder_point", Double, nullable=False),
    Column("order_quantity", Double, nullable=False),
    Column("stockout_date", Date, nullable=True),
    Column("stockout_within_lead_time", Boolean, nullable=False),
    Column("safety_stock_below_need", Boolean, nullable=False),
)

"""ERP databases on SQLite, PostgreSQL and MariaDB for the SQL source's tests.

``erp`` gives a generic layout (not B1, not U8), built per test: a writer engine (the ERP's
side) and the URL the source reads through; the tables carry a per-test suffix and are
dropped afterwards (other helpers share the servers). ``erp_engine`` gives an empty ERP
database for the B1 and U8 emulators, whose tables keep the ERP's names: the servers'
namespace is this run's private schema/database (``tests.conftest.server_url``) and each
test drops the tables it created.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url

from connectors.sql.engine import read_only_url
from connectors.sql.settings import SqlSettings
from tests.conftest import server_url

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.pg),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@dataclass
class Erp:
    """The ERP database of one test: its tables and a writer engine (not read-only)."""

    url: str
    writer: Engine
    journal: Table
    lines: Table
    stock: Table
    backend: str

    # -- what the ERP does ------------------------------------------------------------

    def post(self, rows: list[dict[str, Any]]) -> None:
        with self.writer.begin() as conn:
            conn.execute(insert(self.journal), rows)

    def put_lines(self, rows: list[dict[str, Any]]) -> None:
        with self.writer.begin() as conn:
            conn.execute(insert(self.lines), rows)

    def set_line(self, doc: int, line: int, **values: Any) -> None:
        t = self.lines
        with self.writer.begin() as conn:
            conn.execute(update(t).where(t.c.doc == doc, t.c.line == line).values(**values))

    def remove_line(self, doc: int, line: int, ts: datetime, ver: int) -> None:
        """Delete a line and stamp the document's other lines (a saved edit of the document)."""
        t = self.lines
        with self.writer.begin() as conn:
            conn.execute(delete(t).where(t.c.doc == doc, t.c.line == line))
            conn.execute(update(t).where(t.c.doc == doc).values(ts=local(ts), ver=ver))

    def set_stock(self, rows: list[dict[str, Any]]) -> None:
        with self.writer.begin() as conn:
            conn.execute(insert(self.stock), rows)

    def line_levels(self) -> dict[tuple[str, str], Decimal]:
        """What the document lines add up to per (item, wh): active lines only."""
        t = self.lines
        totals: dict[tuple[str, str], Decimal] = {}
        with self.writer.connect() as conn:
            for item, wh, qty, audited in conn.execute(
                select(t.c.item, t.c.wh, t.c.qty, t.c.audited)
            ):
                if audited is not None:
                    key = (item, wh)
                    totals[key] = totals.get(key, Decimal(0)) + Decimal(qty)
        return {k: v for k, v in totals.items() if v != 0}


def _tables(suffix: str) -> tuple[MetaData, Table, Table, Table]:
    meta = MetaData()
    journal = Table(
        f"jr_{suffix}",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("item", String(40)),
        Column("wh", String(20)),
        Column("qin", Numeric(19, 6)),
        Column("qout", Numeric(19, 6)),
        Column("ttype", Integer),
        Column("ddate", Date),
        Column("ref", String(40)),
    )
    lines = Table(
        f"dl_{suffix}",
        meta,
        Column("doc", Integer, primary_key=True, autoincrement=False),
        Column("line", Integer, primary_key=True, autoincrement=False),
        Column("item", String(40)),
        Column("wh", String(20)),
        Column("qty", Numeric(19, 6)),
        Column("kind", String(20)),
        Column("ddate", DateTime),
        Column("ts", DateTime),
        Column("ver", BigInteger),
        Column("audited", DateTime, nullable=True),
    )
    stock = Table(
        f"st_{suffix}",
        meta,
        Column("item", String(40)),
        Column("wh", String(20)),
        Column("lot", String(20)),
        Column("qty", Numeric(19, 6)),
        Column("res", Numeric(19, 6)),
    )
    return meta, journal, lines, stock


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'erp.db'}"
    if backend == "postgresql":
        return server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL")
    return server_url("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL")


@pytest.fixture(params=BACKENDS)
def erp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Erp]:
    url = backend_url(request.param, tmp_path)
    # the ERP's own side writes; the source opens the same URL read-only
    writer = create_engine(url if request.param == "sqlite" else read_only_url(url))
    meta, journal, lines, stock = _tables(uuid.uuid4().hex[:8])
    meta.create_all(writer)
    try:
        yield Erp(url, writer, journal, lines, stock, request.param)
    finally:
        meta.drop_all(writer)
        writer.dispose()


def settings_for(erp: Erp, **overrides: Any) -> SqlSettings:
    """Settings with a journal stream, a document stream (datetime stamps) and the stock."""
    streams = overrides.pop("streams", None) or [journal_stream(erp), document_stream(erp)]
    data: dict[str, Any] = {
        "type": "sql",
        "url": erp.url,
        "timezone": "Asia/Shanghai",
        "streams": streams,
        "on_hand": {"table": erp.stock.name, "product": "item", "warehouse": "wh", "qty": "qty"},
        **overrides,
    }
    return SqlSettings.model_validate(data)


def journal_stream(erp: Erp, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "journal",
        "mode": "journal",
        "table": erp.journal.name,
        "key": ["id"],
        "position": "id",
        "product": "item",
        "warehouse": "wh",
        "in_qty": "qin",
        "out_qty": "qout",
        "kind": {"column": "ttype", "map": {"20": "receipt", "15": "shipment", "69": "ignore"}},
        "date": "ddate",
        "doc_no": "ref",
        "overlap_positions": 5,
        **overrides,
    }


def document_stream(erp: Erp, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "docs",
        "mode": "document",
        "table": erp.lines.name,
        "document": ["doc"],
        "key": ["line"],
        "updated": "ts",
        "product": "item",
        "warehouse": "wh",
        "qty": "qty",
        "kind": {"column": "kind", "map": {"in": "receipt", "out": "shipment", "none": "ignore"}},
        "date": "ddate",
        "active": {"column": "audited", "not_null": True},
        **overrides,
    }


def local(at: datetime) -> datetime:
    """A UTC instant as the naive Asia/Shanghai reading the ERP stores."""
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)


T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def erp_url(backend: str, tmp_path: Path) -> str:
    """A SQLAlchemy URL, with its driver, for an empty ERP database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'erp.db'}"
    url = make_url(backend_url(backend, tmp_path))
    driver = "postgresql+psycopg" if backend == "postgresql" else "mysql+pymysql"
    return url.set(drivername=driver).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def erp_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an ERP database of ``backend``; the test drops what it creates."""
    engine = create_engine(erp_url(backend, tmp_path))
    yield engine
    engine.dispose()

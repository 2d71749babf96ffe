"""Every statement the source builds binds its values and compiles for every dialect,
SQL Server included (no server here: its dialect ships with SQLAlchemy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

from connectors.sql.query import StreamQueries, probe, snapshot_select
from connectors.sql.settings import SqlSnapshot, SqlStream

SENTINEL = "Zq9'; DROP TABLE x; --sentinel"
DIALECTS: list[Dialect] = [
    mssql.dialect(),
    postgresql.dialect(),
    mysql.dialect(),
    sqlite.dialect(),
]


def stream(**overrides: Any) -> SqlStream:
    data: dict[str, Any] = {
        "name": "s",
        "mode": "document",
        "query": "SELECT l.AutoID, l.ID, l.cInvCode, l.cWhCode, l.iQuantity, h.dDate, "
        "h.ufts, h.cCode, h.dVeriDate FROM dbo.RdRecords32 l JOIN dbo.RdRecord32 h ON h.ID = l.ID",
        "document": ["ID"],
        "key": ["AutoID"],
        "updated": "ufts",
        "product": "cInvCode",
        "warehouse": "cWhCode",
        "qty": "iQuantity",
        "kind": {"column": "cCode", "map": {"a": "receipt"}},
        "date": "dDate",
        "active": {"column": "dVeriDate", "not_null": True},
        **overrides,
    }
    return SqlStream.model_validate(data)


def statements() -> list[tuple[str, Select[Any]]]:
    """Each statement shape with the sentinel wherever a value goes."""
    doc = StreamQueries(stream())
    composite = StreamQueries(stream(document=["ID", "cCode"], key=["AutoID", "cWhCode"]))
    journal = StreamQueries(
        SqlStream.model_validate(
            {
                "name": "j",
                "mode": "journal",
                "table": "dbo.OINM",
                "key": ["TransNum"],
                "position": "TransNum",
                "product": "ItemCode",
                "warehouse": "Warehouse",
                "in_qty": "InQty",
                "out_qty": "OutQty",
                "kind": "receipt",
                "date": "DocDate",
            }
        )
    )
    snap = SqlSnapshot(table="OITW", product="ItemCode", warehouse="WhsCode", qty="OnHand")
    when = datetime(2026, 3, 1)
    return [
        ("journal", journal.journal_page(SENTINEL, None, 100)),  # type: ignore[arg-type]
        ("journal by date", journal.journal_page(None, SENTINEL, 100)),  # type: ignore[arg-type]
        ("changed", doc.changed_documents(SENTINEL, False, [SENTINEL], 100)),
        ("changed by date", doc.changed_documents(SENTINEL, True, None, 100)),
        ("changed composite", composite.changed_documents(when, False, [SENTINEL, SENTINEL], 10)),
        ("newest version", doc.newest_version()),
        ("lines", doc.document_lines([[SENTINEL], [SENTINEL]])),
        ("lines composite", composite.document_lines([[SENTINEL, SENTINEL], [1, SENTINEL]])),
        ("keys", doc.keys_page(SENTINEL, [SENTINEL, SENTINEL], 100)),  # type: ignore[arg-type]
        ("keys composite", composite.keys_page(when, [SENTINEL] * 4, 100)),
        ("snapshot", snapshot_select(snap, nonzero=True)),
        ("probe", probe(snap)),
        ("probe query", probe(stream())),
    ]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(("name", "statement"), statements(), ids=[n for n, _ in statements()])
def test_values_are_bound_never_in_the_sql(
    name: str, statement: Select[Any], dialect: Dialect
) -> None:
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    sql = str(compiled)
    assert "sentinel" not in sql.lower()
    if name == "newest version":
        assert not compiled.params  # an aggregate over the whole relation: nothing to bind
    elif name not in ("snapshot", "probe", "probe query"):
        assert SENTINEL in compiled.params.values()


@pytest.mark.parametrize(("name", "statement"), statements(), ids=[n for n, _ in statements()])
def test_sql_server_gets_top_not_limit(name: str, statement: Select[Any]) -> None:
    sql = str(
        statement.compile(dialect=mssql.dialect(), compile_kwargs={"render_postcompile": True})
    )
    assert "LIMIT" not in sql
    paged = statement._limit_clause is not None  # the statements that page
    assert ("SELECT TOP" in sql) == paged
    assert "dbo.[OINM]" in sql or "dbo.RdRecords32" in sql or "[OITW]" in sql

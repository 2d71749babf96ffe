"""The shipped mappings (``connectors/sql/mappings/b1.yaml``, ``u8.yaml``): each loads through
the real config loader, every statement the source builds from it compiles for SQL Server
(no server here: the dialect ships with SQLAlchemy), its query text keeps to portable SQL,
and it reads the emulators' tables on SQLite, PostgreSQL and MariaDB with the kinds, signs
and document keys the reference gives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.dialects import mssql

from connectors.fxiaoke.emulator import build_emulator as build_crm
from connectors.sql.emulator_b1 import (
    DELIVERY,
    GRPO,
    RETURN,
    B1Emulator,
)
from connectors.sql.emulator_u8 import U8Emulator
from connectors.sql.query import StreamQueries, probe, snapshot_select
from connectors.sql.settings import KindColumn, SqlSettings
from connectors.sql.source import SqlSource
from sync.config.load import parse
from sync.model import Movement, MovementKind

from .rig import config_text, mapping

D = Decimal


def loaded(name: str, url: str = "sqlite:///erp.db") -> SqlSettings:
    """The mapping's ``erp:`` section in a whole config, through ``sync.config.load.parse``."""
    text = config_text(mapping(name), build_crm(None), page_size=100)
    settings = parse(text, source=f"{name}.yaml", env={"ERP_DB_URL": url})
    erp = settings.pipelines[0].erp
    assert isinstance(erp, SqlSettings)
    return erp


def test_the_b1_mapping_is_one_journal_over_oinm_with_the_reference_type_codes() -> None:
    erp = loaded("b1")
    [journal] = erp.streams
    assert (journal.mode, journal.table, journal.position) == ("journal", "OINM", "TransNum")
    assert isinstance(journal.kind, KindColumn) and journal.kind.column == "TransType"
    assert journal.kind.map["15"] == "shipment" and journal.kind.map["20"] == "receipt"
    assert journal.kind.map["69"] == "ignore" and journal.kind.map["10000071"] == "count_gain"
    assert erp.on_hand.qty == "OnHand"
    assert erp.reserved is not None and erp.reserved.qty == "IsCommited"


def test_the_u8_mapping_reads_each_voucher_pair_audited_by_version() -> None:
    erp = loaded("u8")
    assert [s.name for s in erp.streams] == [
        "purchase_receipt",
        "other_receipt",
        "other_issue",
        "product_receipt",
        "material_issue",
        "sales_issue",
    ]
    for stream, vouch in zip(erp.streams, ("01", "08", "09", "10", "11", "32"), strict=True):
        assert stream.query is not None and f"rdrecords{vouch} l" in stream.query
        assert (stream.updated, stream.updated_type, stream.document) == ("ufts", "version", ["id"])
        assert stream.active is not None and stream.active.column == "dveridate"
        assert stream.negate == (vouch in ("09", "11", "32"))  # bRdFlag 0: out
    assert erp.on_hand.qty == "iquantity"
    assert erp.reserved is not None and erp.reserved.qty == "foutquantity"


def statements(erp: SqlSettings) -> Iterator[Any]:
    """Every statement the source builds from ``erp``, with sample values."""
    since = datetime(2026, 3, 1)
    for stream in erp.streams:
        queries = StreamQueries(stream)
        yield probe(stream)
        yield queries.keys_page(since, None, 10)
        yield queries.keys_page(since, [7] * len(stream.identity), 10)
        if stream.mode == "journal":
            yield queries.journal_page(41, None, 10)
            yield queries.journal_page(None, since, 10)
        else:
            yield queries.changed_documents(41, False, [3], 10)
            yield queries.changed_documents(since, True, None, 10)
            yield queries.document_lines([[1], [2]])
    for snapshot in (erp.on_hand, erp.reserved):
        assert snapshot is not None
        yield probe(snapshot)
        yield snapshot_select(snapshot, True)


@pytest.mark.parametrize("name", ["b1", "u8"])
def test_every_statement_compiles_for_sql_server(name: str) -> None:
    dialect = mssql.dialect()  # type: ignore[no-untyped-call]
    compiled = [str(s.compile(dialect=dialect)) for s in statements(loaded(name))]
    assert len(compiled) > 8
    for sql in compiled:
        assert "GREATEST" not in sql.upper()
        assert " LIMIT " not in sql.upper()  # SQL Server pages with TOP / OFFSET … FETCH


@pytest.mark.parametrize("name", ["b1", "u8"])
def test_query_text_keeps_to_sql_every_backend_parses(name: str) -> None:
    for stream in loaded(name).streams:
        if stream.query is None:
            continue
        text = stream.query.upper()
        for construct in ("GREATEST", "LIMIT", "::", "`", '"', "[", "IFNULL", "NVL", "TOP "):
            assert construct not in text, (stream.name, construct)
        # unquoted names are lower case: PostgreSQL folds them, MariaDB's table names are
        # case-sensitive (the emulator's tables are lower case)
        assert all(t == t.lower() for t in re.findall(r"(?:FROM|JOIN) (\w+)", stream.query))


@pytest.fixture
def b1(erp_engine: Engine) -> Iterator[B1Emulator]:
    emulator = B1Emulator(erp_engine, now=lambda: datetime(2026, 3, 2, 10, 0)).create()
    yield emulator
    emulator.drop()


@pytest.fixture
def u8(erp_engine: Engine) -> Iterator[U8Emulator]:
    emulator = U8Emulator(erp_engine, now=lambda: datetime(2026, 3, 2, 10, 0)).create()
    yield emulator
    emulator.drop()


def source_for(name: str, engine: Engine) -> SqlSource:
    return SqlSource(loaded(name, engine.url.render_as_string(hide_password=False)))


def pulled(source: SqlSource, stream: str) -> list[Movement]:
    return [m for page in source.pull(stream, None, 100) for m in page.movements]


def test_b1_postings_read_as_the_reference_maps_them(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10)])
    shipped = b1.post(DELIVERY, [("A", "01", 3)])
    b1.post(RETURN, [("A", "01", 1)])
    b1.transfer([("A", "01", "02", 2)])
    b1.landed_costs([("A", "01")])
    b1.count([("A", "01", 5)])
    b1.cancel(shipped)
    b1.commit("A", "01", 4)
    source = source_for("b1", b1.engine)
    try:
        assert source.check().startswith("sql database")
        moves = pulled(source, "journal")
        assert [(m.kind, m.warehouse, m.qty, m.doc_no) for m in moves] == [
            (MovementKind.RECEIPT, "01", D(10), "1001"),
            (MovementKind.SHIPMENT, "01", D(-3), "1002"),
            (MovementKind.CUSTOMER_RETURN, "01", D(1), "1003"),
            (MovementKind.TRANSFER_IN, "01", D(-2), "1004"),
            (MovementKind.TRANSFER_IN, "02", D(2), "1004"),
            # 69 (landed costs) is 'ignore': a journal leaves it out
            (MovementKind.COUNT_GAIN, "01", D(-1), "1006"),  # counted 5 of 6
            (MovementKind.SHIPMENT, "01", D(3), "1007"),  # the cancellation
        ]
        assert [m.key for m in moves][:2] == ["sql:journal:1:0", "sql:journal:2:0"]
        # DocDate is a date at midnight, in the mapping's zone (UTC)
        assert {m.occurred_at for m in moves} == {datetime(2026, 3, 2, tzinfo=UTC)}
        assert {(o.sku, o.warehouse): o.qty for o in source.on_hand()} == b1.on_hand()
        assert {(r.sku, r.warehouse): r.qty for r in source.reserved() or []} == {("A", "01"): D(4)}
    finally:
        source.close()


def test_u8_documents_read_as_the_reference_maps_them(u8: U8Emulator) -> None:
    u8.audit("01", u8.save("01", [("A", 10), ("B", 4)], warehouse="01"))
    u8.audit("01", u8.save("01", [("B", -1)], warehouse="01"))  # red ink: back to the supplier
    u8.audit("32", u8.save("32", [("A", 3)], warehouse="01"))
    u8.audit("32", u8.save("32", [("A", -1)], warehouse="01"))  # red ink: a customer's return
    u8.transfer([("A", 2)], source="01", target="02")
    u8.count("B", "01", 5)  # 3 on hand: a gain of 2
    u8.count("A", "02", 1)  # 2 on hand: a loss of 1
    u8.audit("10", u8.save("10", [("C", 7)], warehouse="02"))
    u8.audit("11", u8.save("11", [("C", 2)], warehouse="02"))
    u8.save("09", [("C", 1)], warehouse="02")  # not audited: inactive
    u8.commit("A", "01", "1.5")
    source = source_for("u8", u8.engine)
    try:
        assert source.check().startswith("sql database")
        seen = {
            stream: [(m.kind, m.sku, m.warehouse, m.qty, m.active) for m in pulled(source, stream)]
            for stream in source.streams()
        }
        R = MovementKind
        assert seen == {
            "purchase_receipt": [
                (R.RECEIPT, "A", "01", D(10), True),
                (R.RECEIPT, "B", "01", D(4), True),
                (R.SUPPLIER_RETURN, "B", "01", D(-1), True),
            ],
            "sales_issue": [
                (R.SHIPMENT, "A", "01", D(-3), True),
                (R.CUSTOMER_RETURN, "A", "01", D(1), True),
            ],
            "other_issue": [
                (R.TRANSFER_OUT, "A", "01", D(-2), True),
                (R.COUNT_LOSS, "A", "02", D(-1), True),
                (R.OTHER_OUT, "C", "02", D(-1), False),
            ],
            "other_receipt": [
                (R.TRANSFER_IN, "A", "02", D(2), True),
                (R.COUNT_GAIN, "B", "01", D(2), True),
            ],
            "product_receipt": [(R.OTHER_IN, "C", "02", D(7), True)],
            "material_issue": [(R.OTHER_OUT, "C", "02", D(-2), True)],
        }
        active: dict[tuple[str, str], Decimal] = {}
        for stream in source.streams():
            for m in pulled(source, stream):
                if m.active:
                    active[(m.sku, m.warehouse)] = active.get((m.sku, m.warehouse), D(0)) + m.qty
        on_hand = {(o.sku, o.warehouse): o.qty for o in source.on_hand()}
        assert {k: v for k, v in active.items() if v} == on_hand == u8.on_hand()
        assert {(r.sku, r.warehouse): r.qty for r in source.reserved() or []} == {
            ("A", "01"): D("1.5")
        }
        doc = pulled(source, "sales_issue")[0]
        assert re.fullmatch(r"sql:sales_issue:\d+:\d+", doc.key) and doc.doc_no.startswith("32")
    finally:
        source.close()

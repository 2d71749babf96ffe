"""Rows → movements: keys, quantities, kinds, dates (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.sql.mapping import (
    MAX_VERSION,
    POSITION_EPOCH,
    RowError,
    RowMapper,
    decode_part,
    encode_part,
    local_bound,
    movement_key,
    to_decimal,
    to_utc,
)
from connectors.sql.settings import SqlStream
from sync.model import Movement, MovementKind, RejectedRecord, document_key

SHANGHAI = ZoneInfo("Asia/Shanghai")


@given(st.text())
def test_key_part_round_trip(value: str) -> None:
    encoded = encode_part(value)
    assert ":" not in encoded and "," not in encoded
    assert decode_part(encoded) == value


def test_key_encoding_of_separators() -> None:
    key = movement_key("s", ["a:b", "c,d"], ["50%", 7])
    assert key == "sql:s:a%3Ab,c%2Cd:50%25,7"
    assert document_key(key) == "sql:s:a%3Ab,c%2Cd"
    assert movement_key("j", [12], None) == "sql:j:12:0"
    assert movement_key("j", [Decimal("12"), 12.0], None) == "sql:j:12,12:0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.250"), Decimal("1.250")),
        (7, Decimal(7)),
        (0.1, Decimal("0.1")),
        (-2.5, Decimal("-2.5")),
        (" 3.75 ", Decimal("3.75")),
        ("1E+2", Decimal(100)),
    ],
)
def test_decimal_from_driver_values(value: object, expected: Decimal) -> None:
    result = to_decimal(value, "q")
    assert result == expected and isinstance(result, Decimal)


@pytest.mark.parametrize("value", [None, "abc", True, float("nan"), "Infinity", object()])
def test_not_a_quantity(value: object) -> None:
    with pytest.raises(RowError) as info:
        to_decimal(value, "InQty")
    assert info.value.column == "InQty"


def test_naive_datetime_in_zone_becomes_utc() -> None:
    assert to_utc(datetime(2026, 3, 1, 16, 0), SHANGHAI, "d") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert to_utc(date(2026, 3, 2), SHANGHAI, "d") == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert to_utc("2026-03-01 16:00:00.000000", SHANGHAI, "d") == datetime(
        2026, 3, 1, 8, tzinfo=UTC
    )
    aware = datetime(2026, 3, 1, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert to_utc(aware, SHANGHAI, "d") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(RowError):
        to_utc(None, SHANGHAI, "d")


def test_local_bound_reads_the_earliest_wall_clock_across_a_clock_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-10-25 01:30 UTC is 02:30 CET (after 03:00 CEST went back to 02:00)
    instant = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, before the change
    assert local_bound(instant, berlin) == datetime(2026, 10, 25, 1, 30)
    assert local_bound(datetime(2026, 3, 1, 8, tzinfo=UTC), SHANGHAI) == datetime(2026, 3, 1, 16)


def stream(**overrides: Any) -> SqlStream:
    data: dict[str, Any] = {
        "name": "s",
        "mode": "journal",
        "table": "t",
        "key": ["id"],
        "position": "id",
        "product": "item",
        "warehouse": "wh",
        "qty": "q",
        "kind": {"column": "tt", "map": {"20": "receipt", "15": "shipment", "69": "ignore"}},
        "date": "d",
        **overrides,
    }
    return SqlStream.model_validate(data)


ROW = {"id": 1, "item": " A1 ", "wh": "W", "q": Decimal(3), "tt": 20, "d": date(2026, 3, 2)}


def mapped(row: dict[str, Any], **overrides: Any) -> Movement | RejectedRecord | None:
    return RowMapper(stream(**overrides), SHANGHAI).map(row)


def test_a_row_becomes_a_movement() -> None:
    m = mapped(ROW)
    assert isinstance(m, Movement)
    assert (m.key, m.kind, m.sku, m.warehouse, m.qty, m.active) == (
        "sql:s:1:0",
        MovementKind.RECEIPT,
        "A1",
        "W",
        3,
        True,
    )
    assert m.occurred_at == m.source_updated_at == datetime(2026, 3, 1, 16, tzinfo=UTC)


@pytest.mark.parametrize(("column", "value"), [("item", None), ("item", "  "), ("wh", None)])
def test_null_or_empty_code_is_rejected_naming_the_column(column: str, value: object) -> None:
    r = mapped({**ROW, column: value})
    assert isinstance(r, RejectedRecord) and r.field == column and r.key == "sql:s:1:0"


def test_kind_map() -> None:
    assert mapped({**ROW, "tt": "15 "}).kind == MovementKind.SHIPMENT  # type: ignore[union-attr]
    assert mapped({**ROW, "tt": Decimal("20.0")}).kind == MovementKind.RECEIPT  # type: ignore[union-attr]
    assert mapped({**ROW, "tt": 69}) is None  # journal: moves no stock, left out
    unknown = mapped({**ROW, "tt": 99})
    assert isinstance(unknown, RejectedRecord)
    assert (unknown.field, unknown.reason) == ("tt", "unknown kind value '99'")
    fixed = mapped(ROW, kind="count_gain")
    assert isinstance(fixed, Movement) and fixed.kind == MovementKind.COUNT_GAIN


def test_ignore_in_document_mode_is_an_inactive_line() -> None:
    row = {**ROW, "doc": "D:1", "tt": 69, "ts": datetime(2026, 3, 2, 9)}
    m = RowMapper(_doc_stream(), SHANGHAI).map(row)
    assert isinstance(m, Movement) and not m.active and m.key == "sql:s:D%3A1:1"
    assert document_key(m.key) == "sql:s:D%3A1"
    assert m.source_updated_at == datetime(2026, 3, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("version", [0, 7, 2**40, MAX_VERSION])
def test_a_row_version_is_the_stamp(version: int) -> None:
    """``updated_type: version``: source_updated_at is POSITION_EPOCH + version µs, not the
    business date (architecture §4.6)."""
    row = {**ROW, "doc": 1, "tt": 20, "ts": version}
    m = RowMapper(_doc_stream(updated_type="version"), SHANGHAI).map(row)
    assert isinstance(m, Movement)
    assert m.source_updated_at == POSITION_EPOCH + timedelta(microseconds=version)
    assert m.occurred_at == datetime(2026, 3, 1, 16, tzinfo=UTC)


@pytest.mark.parametrize("version", [MAX_VERSION + 1, 2**63, -1, "x"])
def test_a_version_no_stamp_holds_is_rejected(version: object) -> None:
    row = {**ROW, "doc": 1, "tt": 20, "ts": version}
    r = RowMapper(_doc_stream(updated_type="version"), SHANGHAI).map(row)
    assert isinstance(r, RejectedRecord) and r.field == "ts" and r.key == "sql:s:1:1"


def test_max_version_is_the_last_instant() -> None:
    last = POSITION_EPOCH + timedelta(microseconds=MAX_VERSION)
    assert last == datetime.max.replace(tzinfo=UTC)


def _doc_stream(**overrides: Any) -> SqlStream:
    data = {
        "name": "s",
        "mode": "document",
        "table": "t",
        "document": ["doc"],
        "key": ["id"],
        "updated": "ts",
        "product": "item",
        "warehouse": "wh",
        "qty": "q",
        "kind": {"column": "tt", "map": {"20": "receipt", "69": "ignore"}},
        "date": "d",
        **overrides,
    }
    return SqlStream.model_validate(data)


def test_sign_negate_and_in_out() -> None:
    assert mapped(ROW, negate=True).qty == -3  # type: ignore[union-attr]
    in_out = {**ROW, "qi": 0.1, "qo": "2"}
    m = mapped(in_out, qty=None, in_qty="qi", out_qty="qo")
    assert isinstance(m, Movement) and m.qty == Decimal("-1.9")
    bad = mapped({**in_out, "qo": None}, qty=None, in_qty="qi", out_qty="qo")
    assert isinstance(bad, RejectedRecord) and bad.field == "qo"


def test_active_rules() -> None:
    audited = {"column": "ok", "not_null": True}
    assert mapped({**ROW, "ok": datetime(2026, 1, 1)}, active=audited).active  # type: ignore[union-attr]
    assert not mapped({**ROW, "ok": None}, active=audited).active  # type: ignore[union-attr]
    status = {"column": "st", "in": ["O", 1]}
    assert mapped({**ROW, "st": 1}, active=status).active  # type: ignore[union-attr]
    assert not mapped({**ROW, "st": "C"}, active=status).active  # type: ignore[union-attr]

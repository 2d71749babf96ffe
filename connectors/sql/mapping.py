"""Result rows → movements: pure functions, no I/O.

A row is a mapping of column name → value as the driver returns it. Quantities are
taken to be in the base unit already (B1: the inventory UoM of OINM/OITW; U8: the main
unit of ``iQuantity``); a query may convert. A row that cannot become a movement comes
back as a ``RejectedRecord`` naming the column (architecture §4: quarantine, continue).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.sql.settings import IGNORE, KindColumn, SqlStream, kind_text
from sync.model import Movement, MovementKind, RejectedRecord

SOURCE = "sql"
#: the ``updated_at`` of position and version cursors: older than any run start − overlap,
#: so the core's cap never replaces such a cursor (architecture §4.6)
POSITION_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the largest row version a ``source_updated_at`` can carry (``POSITION_EPOCH`` + that many
#: µs is 9999-12-31 23:59:59.999999, the last instant a datetime holds)
MAX_VERSION = (datetime.max.replace(tzinfo=UTC) - POSITION_EPOCH) // timedelta(microseconds=1)

Row = Mapping[Any, Any]


class RowError(ValueError):
    """One column of one row cannot be read; ``column`` names it."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def encode_part(value: object) -> str:
    """One key value as text that cannot be confused with the key's separators:
    ``%`` → ``%25``, ``:`` → ``%3A``, ``,`` → ``%2C`` (reversible by ``decode_part``)."""
    text = value if isinstance(value, str) else kind_text(value)
    return text.replace("%", "%25").replace(":", "%3A").replace(",", "%2C")


def decode_part(text: str) -> str:
    return text.replace("%2C", ",").replace("%3A", ":").replace("%25", "%")


def join_parts(values: Sequence[object]) -> str:
    return ",".join(encode_part(v) for v in values)


def movement_key(stream: str, doc: Sequence[object], line: Sequence[object] | None) -> str:
    """``sql:{stream}:{doc}:{line}``; ``line`` None (journal rows) gives ``0``.

    ``sync.model.document_key`` of it is ``sql:{stream}:{doc}``, the document the ledger
    withdraws removed lines by.
    """
    return f"{SOURCE}:{stream}:{join_parts(doc)}:{'0' if line is None else join_parts(line)}"


def document_of(stream: str, doc: Sequence[object]) -> str:
    """The document key (``sync.model.document_key``) of a document's identity values."""
    return f"{SOURCE}:{stream}:{join_parts(doc)}"


def to_decimal(value: object, column: str) -> Decimal:
    """A quantity as an exact Decimal: Decimal as is, int exactly, float via its shortest repr
    (SQLite REAL, SQL Server float: ``0.1`` → ``Decimal("0.1")``), text parsed.

    Raises RowError(column) for NULL, bool, non-numbers and NaN/infinity.
    """
    if isinstance(value, bool) or value is None:
        raise RowError(column, f"quantity is {'NULL' if value is None else repr(value)}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise RowError(column, f"quantity {value!r} is not a number") from None
    else:
        raise RowError(column, f"quantity of type {type(value).__name__} is not a number")
    if not number.is_finite():
        raise RowError(column, f"quantity {value!r} is not a finite number")
    return number


def to_utc(value: object, zone: tzinfo, column: str) -> datetime:
    """A database date/datetime as an aware UTC instant.

    A ``date`` is its midnight; naive datetimes are wall-clock readings in ``zone`` (fold=0:
    the first of a repeated hour); aware ones are converted. Text in ISO form (SQLite keeps
    dates as text) is parsed. Raises RowError(column) for NULL or anything else.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(column, f"{value!r} is not a date or datetime") from None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, date):
        stamp = datetime.combine(value, time(0))
    else:
        raise RowError(column, f"{'NULL' if value is None else repr(value)} is not a date")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=zone)
    return stamp.astimezone(UTC)


def local_bound(instant: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock reading to compare the database's naive stamps with, so that every
    stamp at or after ``instant`` is ``>=`` it: the earliest reading in ``zone`` over the next
    day (a clock set back makes a later instant read earlier; architecture §4.3)."""
    utc = instant.astimezone(UTC)
    readings = [
        (utc + timedelta(minutes=15 * i)).astimezone(zone).replace(tzinfo=None)
        - timedelta(minutes=15 * i)
        for i in range(97)
    ]
    return min(readings)


def to_int(value: object, column: str) -> int:
    """A position or row version as an int (Decimal/float integers and digit text accepted)."""
    if isinstance(value, bool) or value is None:
        raise RowError(column, f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):  # SQL Server rowversion read without a CAST
        return int.from_bytes(value, "big")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise RowError(column, f"{value!r} is not an integer") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise RowError(column, f"{value!r} is not an integer")
    return int(number)


def to_version(value: object, column: str) -> int:
    """A row version (U8 ``ufts``) as an int in ``0..MAX_VERSION``.

    Raises RowError(column) for what ``to_int`` refuses, a negative version, or one beyond
    ``MAX_VERSION`` (its ``version_instant`` would not fit in a datetime).
    """
    version = to_int(value, column)
    if version < 0:
        raise RowError(column, f"row version {version} is negative")
    if version > MAX_VERSION:
        raise RowError(
            column, f"row version {version} is beyond {MAX_VERSION}, the largest a stamp holds"
        )
    return version


def version_instant(version: int) -> datetime:
    """The ``source_updated_at`` of a line stamped with row version ``version``:
    ``POSITION_EPOCH + version µs``. Not a time: an instant that orders the line's versions
    as the versions do, so an edit is never older than the read it replaces (architecture
    §3.3, §4.6). ``version`` must be in ``0..MAX_VERSION`` (``to_version``)."""
    return POSITION_EPOCH + timedelta(microseconds=version)


def code(value: object, column: str) -> str:
    """A product or warehouse code: ``str(value).strip()``; NULL or empty → RowError(column)."""
    text = "" if value is None else (value if isinstance(value, str) else kind_text(value)).strip()
    if not text:
        raise RowError(column, f"{'NULL' if value is None else 'empty'} code")
    return text


def raw_of(row: Row) -> dict[str, Any]:
    """A row as JSON-safe text values, for the quarantine's ``raw``."""
    return {
        k: v if v is None or isinstance(v, bool | int | str) else str(v) for k, v in row.items()
    }


class RowMapper:
    """Maps one stream's rows; built once per stream from its settings and the ERP's zone."""

    def __init__(self, stream: SqlStream, zone: tzinfo) -> None:
        self.stream = stream
        self.zone = zone
        self.document_mode = stream.mode == "document"
        self.kind_map = stream.kind if isinstance(stream.kind, KindColumn) else None

    def doc_values(self, row: Row) -> list[Any]:
        s = self.stream
        return [row[c] for c in (s.document if self.document_mode else s.key)]

    def key(self, row: Row) -> str:
        s = self.stream
        if self.document_mode:
            return movement_key(s.name, [row[c] for c in s.document], [row[c] for c in s.key])
        return movement_key(s.name, [row[c] for c in s.key], None)

    def qty(self, row: Row) -> Decimal:
        s = self.stream
        if s.qty is not None:
            value = to_decimal(row[s.qty], s.qty)
            return -value if s.negate else value
        assert s.in_qty is not None and s.out_qty is not None
        return to_decimal(row[s.in_qty], s.in_qty) - to_decimal(row[s.out_qty], s.out_qty)

    def kind(self, row: Row) -> MovementKind | None:
        """The row's kind; None for a value mapped to ``ignore``. RowError for an unknown value."""
        if self.kind_map is None:
            assert isinstance(self.stream.kind, MovementKind)
            return self.stream.kind
        value = row[self.kind_map.column]
        target = self.kind_map.map.get(kind_text(value)) if value is not None else None
        if target is None:
            raise RowError(self.kind_map.column, f"unknown kind value {kind_text(value)!r}")
        return None if target == IGNORE else MovementKind(target)

    def active(self, row: Row) -> bool:
        rule = self.stream.active
        if rule is None:
            return True
        value = row[rule.column]
        if rule.not_null:
            return value is not None
        return value is not None and kind_text(value) in (rule.values or ())

    def map(self, row: Row) -> Movement | RejectedRecord | None:
        """The row's movement, its rejection, or None (journal row of an ``ignore`` kind).

        ``source_updated_at`` orders the versions of a line (the ledger ignores an older one,
        architecture §3.3): a journal row's date (journal rows never change); a document
        line's ``updated`` datetime, or for ``updated_type: version`` its row version as
        ``version_instant`` (``POSITION_EPOCH`` + version µs), so a line whose date is edited
        earlier is still newer than the read before. A version outside ``0..MAX_VERSION`` is
        rejected naming the ``updated`` column.

        Document mode keeps an ``ignore`` row as an inactive movement, so a line whose type
        changes to one that moves no stock is withdrawn like a cancelled one.
        """
        s = self.stream
        try:
            key = self.key(row)
        except RowError as exc:  # pragma: no cover - key columns are plain values
            return RejectedRecord(s.name, exc.reason, raw_of(row), None, exc.column)
        try:
            kind = self.kind(row)
            if kind is None and not self.document_mode:
                return None
            sku = code(row[s.product], s.product)
            warehouse = code(row[s.warehouse], s.warehouse)
            qty = self.qty(row)
            occurred = to_utc(row[s.date], self.zone, s.date)
            updated = occurred
            if self.document_mode:
                assert s.updated is not None
                if s.updated_type == "version":
                    updated = version_instant(to_version(row[s.updated], s.updated))
                else:
                    updated = to_utc(row[s.updated], self.zone, s.updated)
        except RowError as exc:
            return RejectedRecord(s.name, exc.reason, raw_of(row), key, exc.column)
        doc_no = "" if s.doc_no is None or row[s.doc_no] is None else str(row[s.doc_no]).strip()
        return Movement(
            key=key,
            kind=kind if kind is not None else _ignored_kind(qty),
            sku=sku,
            warehouse=warehouse,
            qty=qty,
            occurred_at=occurred,
            source_updated_at=updated,
            doc_no=doc_no,
            active=kind is not None and self.active(row),
        )


def _ignored_kind(qty: Decimal) -> MovementKind:
    """The kind an ``ignore`` line is stored under (inactive: it moves nothing)."""
    return MovementKind.OTHER_OUT if qty < 0 else MovementKind.OTHER_IN

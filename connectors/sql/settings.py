"""The ``erp:`` settings of a SQL ERP source: a database URL and streams mapped column by column.

Every cross-field rule names its own key (``erp.streams[1].in_qty``), not just the stream:
the rules raise a ``ValidationError`` whose locations pydantic joins to the stream's path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from sync.model import MovementKind
from sync.settings import MAX_TIMEOUT_S, Secret, StrictModel, TimeZoneName, register_url_password

#: a map target that moves no stock (B1's landed costs, TransType 69)
IGNORE = "ignore"
KindTarget = Literal[
    "receipt",
    "supplier_return",
    "shipment",
    "customer_return",
    "transfer_out",
    "transfer_in",
    "count_gain",
    "count_loss",
    "other_in",
    "other_out",
    "ignore",
]
#: the most positions / versions a pull may re-read behind its cursor
MAX_OVERLAP = 10**9


def kind_text(value: object) -> str:
    """A value as a kind map compares it: integers without decimals, strings stripped
    (``20``, ``20.0``, ``Decimal("20")`` and ``" 20 "`` all read ``"20"``)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str | bytes):
        try:
            from decimal import Decimal

            number = Decimal(str(value))
            if number.is_finite() and number == number.to_integral_value():
                return str(int(number))
        except ArithmeticError:
            pass
    return str(value).strip()


def _problem(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("sql_mapping", message), loc=loc, input=None)


def _raise(problems: list[InitErrorDetails], title: str) -> None:
    if problems:
        raise ValidationError.from_exception_data(title, problems)


class KindColumn(StrictModel):
    """``kind: {column: TransType, map: {"20": receipt, "69": ignore}}``: kind by a column."""

    column: str = Field(min_length=1, description="the column holding the document type")
    map: dict[str, KindTarget] = Field(
        min_length=1,
        description="column value (compared as text: integers without decimals, strings "
        "stripped) → movement kind, or 'ignore' for rows that move no stock",
    )

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {kind_text(k): v for k, v in value.items()}
        return value


class ActiveRule(StrictModel):
    """When a row counts: ``{column: dVeriDate, not_null: true}`` or ``{column: X, in: [...]}``."""

    column: str = Field(min_length=1)
    not_null: bool = Field(False, description="active when the column is not NULL (audited)")
    values: list[str] | None = Field(
        None,
        alias="in",
        description="active when the column's value (compared as text) is one of these",
    )

    @field_validator("values", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [kind_text(v) for v in value]
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> ActiveRule:
        if self.not_null == (self.values is not None):
            _raise(
                [_problem(("not_null",), "give exactly one of not_null: true or in: [...]")],
                "ActiveRule",
            )
        return self


class Relation(StrictModel):
    """Where rows come from: a table/view (``dbo.OINM``) or a SELECT wrapped as a subquery."""

    table: str | None = Field(
        None, min_length=1, description="table or view, optionally schema.table"
    )
    query: str | None = Field(
        None,
        min_length=1,
        description="a SELECT (no ORDER BY needed); wrapped as a subquery, so it may join and "
        "convert units; colons are taken literally (no parameters)",
    )

    def _relation_problems(self) -> list[InitErrorDetails]:
        if (self.table is None) == (self.query is None):
            return [_problem(("table",), "give exactly one of table or query")]
        if self.query is not None:
            body = self.query.strip().rstrip(";").strip()
            if body[:6].lower() != "select":
                return [_problem(("query",), "must be a single SELECT statement")]
            if ";" in body:
                return [_problem(("query",), "must be one statement (no ';' inside)")]
        return []

    @property
    def sql(self) -> str | None:
        """The query without a trailing ';' (None for a table)."""
        return None if self.query is None else self.query.strip().rstrip(";").strip()


class SqlSnapshot(Relation):
    """``on_hand:`` / ``reserved:``: quantity per (product, warehouse) now, in the base unit.

    Several rows per key (lots, bins) add up.
    """

    product: str = Field(min_length=1)
    warehouse: str = Field(min_length=1)
    qty: str = Field(min_length=1)

    @model_validator(mode="after")
    def _rules(self) -> SqlSnapshot:
        _raise(self._relation_problems(), "SqlSnapshot")
        return self


class SqlStream(Relation):
    """One stream: a table or query whose rows are movement lines (journal) or document lines."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=60)
    mode: Literal["journal", "document"]
    key: list[str] = Field(
        min_length=1, description="columns identifying a row (document mode: within its document)"
    )
    position: str | None = Field(
        None, description="journal: the monotone integer column paged on (B1 OINM.TransNum)"
    )
    overlap_positions: int = Field(
        1000,
        ge=0,
        le=MAX_OVERLAP,
        description="journal: re-read positions > last − N (rows committed out of id order) [I]",
    )
    document: list[str] = Field(
        default_factory=list, description="document mode: the columns identifying a document"
    )
    updated: str | None = Field(
        None, description="document mode: the change stamp, a datetime or an integer version"
    )
    updated_type: Literal["datetime", "version"] = "datetime"
    overlap_versions: int = Field(
        0, ge=0, le=MAX_OVERLAP, description="version stamps: re-read versions > last − N"
    )
    product: str = Field(min_length=1)
    warehouse: str = Field(min_length=1)
    qty: str | None = Field(None, description="signed quantity in the base unit, as stored")
    negate: bool = Field(False, description="with qty: the stored sign is the opposite of stock")
    in_qty: str | None = Field(None, description="quantity in (≥ 0); net = in_qty − out_qty")
    out_qty: str | None = Field(None, description="quantity out (≥ 0)")
    kind: MovementKind | KindColumn = Field(
        description="one kind for the whole stream, or {column, map}"
    )
    date: str = Field(min_length=1, description="business date or datetime (occurred_at)")
    doc_no: str | None = Field(None, description="printed document number")
    active: ActiveRule | None = Field(None, description="default: every row is active")

    @field_validator("kind", mode="wrap")
    @classmethod
    def _kind(cls, value: Any, handler: Any) -> MovementKind | KindColumn:
        """One kind by name, or a column map; errors located at ``kind`` / ``kind.map.X``
        (not under pydantic's union member names)."""
        if isinstance(value, MovementKind | KindColumn):
            return value
        if isinstance(value, dict):
            return KindColumn.model_validate(value)
        known = [k.value for k in MovementKind if k != MovementKind.ADJUSTMENT]
        if isinstance(value, str) and value in known:
            return MovementKind(value)
        raise ValueError(
            f"unknown kind {value!r}; give one of {', '.join(known)}, or {{column, map}}"
        )

    @model_validator(mode="after")
    def _rules(self) -> SqlStream:
        problems = self._relation_problems() + self._qty_problems() + self._mode_problems()
        _raise(problems, "SqlStream")
        return self

    def _qty_problems(self) -> list[InitErrorDetails]:
        if self.qty is not None and (self.in_qty is not None or self.out_qty is not None):
            return [_problem(("qty",), "give either qty or in_qty + out_qty, not both")]
        if self.qty is None and self.in_qty is None and self.out_qty is None:
            return [_problem(("qty",), "required: qty, or in_qty + out_qty")]
        if self.qty is None and self.out_qty is None:
            return [_problem(("out_qty",), "in_qty needs out_qty (net = in − out)")]
        if self.qty is None and self.in_qty is None:
            return [_problem(("in_qty",), "out_qty needs in_qty (net = in − out)")]
        if self.negate and self.qty is None:
            return [_problem(("negate",), "negate applies to qty only; in/out give the sign")]
        return []

    def _mode_problems(self) -> list[InitErrorDetails]:
        given = self.model_fields_set
        problems = []
        if self.mode == "journal":
            if self.position is None:
                problems.append(_problem(("position",), "a journal stream needs position"))
            for name in ("document", "updated", "updated_type", "overlap_versions"):
                if name in given:
                    problems.append(_problem((name,), "only document streams read it"))
        else:
            if not self.document:
                problems.append(_problem(("document",), "a document stream needs document"))
            if self.updated is None:
                problems.append(_problem(("updated",), "a document stream needs updated"))
            for name in ("position", "overlap_positions"):
                if name in given:
                    problems.append(_problem((name,), "only journal streams read it"))
            if "overlap_versions" in given and self.updated_type != "version":
                problems.append(_problem(("overlap_versions",), "only for updated_type: version"))
        return problems

    @property
    def identity(self) -> list[str]:
        """The columns a key is made of, in key order (document columns first)."""
        return [*self.document, *self.key] if self.mode == "document" else list(self.key)


class SqlSettings(StrictModel):
    """``erp:`` section of a SQL ERP source (SAP Business One, Yonyou U8, home-grown)."""

    type: Literal["sql"] = "sql"
    url: Secret = Field(
        description="SQLAlchemy URL of the ERP database, e.g. postgresql+psycopg://user:pw@host/db "
        "or mssql+pymssql://…; use a login that may only SELECT"
    )
    timezone: TimeZoneName = Field(
        "UTC", description="IANA zone of the database's naive datetimes (dates and stamps)"
    )
    statement_timeout_s: float = Field(
        60.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="every statement is cut after this many seconds (a TransientError)",
    )
    streams: list[SqlStream] = Field(min_length=1)
    on_hand: SqlSnapshot = Field(description="the ERP's on hand now (baseline, reconcile)")
    reserved: SqlSnapshot | None = Field(
        None, description="reserved stock now; omitted: the ERP keeps none"
    )

    @field_validator("url")
    @classmethod
    def _parsable(cls, value: Secret) -> Secret:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        raw = value.get_secret_value()
        register_url_password(raw)
        try:
            make_url(raw).get_dialect()
        except NoSuchModuleError as exc:
            raise ValueError(f"unknown database dialect ({exc})") from None
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a SQLAlchemy database URL (not shown: it may hold a password)"
            ) from None
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> SqlSettings:
        seen: dict[str, int] = {}
        problems = []
        for i, stream in enumerate(self.streams):
            if stream.name in seen:
                problems.append(
                    _problem(
                        ("streams", i, "name"),
                        f"stream name {stream.name!r} is already used by "
                        f"streams[{seen[stream.name]}]",
                    )
                )
            seen.setdefault(stream.name, i)
        _raise(problems, "SqlSettings")
        return self

    def stream(self, name: str) -> tuple[int, SqlStream]:
        """The stream called ``name`` and its index. Raises KeyError."""
        for i, stream in enumerate(self.streams):
            if stream.name == name:
                return i, stream
        raise KeyError(name)

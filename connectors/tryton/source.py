"""Tryton as an ErpSource: stock moves pulled by (write_date, id), on-hand per warehouse.

One stream, ``moves``: every stock.move in every state, so that a move that is
cancelled (or never reached ``done``) arrives as ``active=False``. Pages follow
the keyset (change time, id) where the change time is ``write_date``, or
``create_date`` for rows never written; Tryton cannot order by that coalesce,
so the two kinds of rows are read as two keyset streams and merged.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from connectors.tryton.client import TrytonClient
from connectors.tryton.mapping import (
    LOCATION_FIELDS,
    MOVE_FIELDS,
    SOURCE_NAME,
    STREAM_MOVES,
    LocationTree,
    OtherPolicy,
    aware,
    move_to_movements,
    naive,
    tie_break,
    updated_at,
)
from sync.errors import PermanentError
from sync.model import Cursor, Movement, OnHand, Page, RejectedRecord
from sync.ports import ConnectorContext
from sync.settings import Secret, StrictModel, TimeZoneName

Row = dict[str, Any]


class TrytonSettings(StrictModel):
    """Connection and mapping settings for one Tryton database."""

    type: Literal["tryton"] = Field(description="Connector name.")
    url: str = Field(description="Base URL of trytond, e.g. https://erp.example.com:8000.")
    database: str = Field(description="Tryton database name (the server must serve it: -d).")
    username: str = Field(description="Tryton login with read access to stock and products.")
    password: Secret = Field(description="Password of that login.")
    company: int = Field(default=1, ge=1, description="Company id sent in every RPC context.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts per RPC call on transient errors (timeouts, 5xx)."
    )
    warehouses: list[str] | None = Field(
        default=None,
        description="Warehouse location codes to sync; all warehouses when omitted.",
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        description="Time zone of the server's naive timestamps (run trytond with TZ=UTC).",
    )
    other_location_types: dict[str, OtherPolicy] = Field(
        default_factory=dict,
        description=(
            "How moves to/from location types other than supplier, customer, lost_found "
            "and storage count: 'other' (OTHER_IN/OTHER_OUT, the default, e.g. production) "
            "or 'count' (COUNT_GAIN/COUNT_LOSS)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")


def build(settings: TrytonSettings, context: ConnectorContext) -> TrytonSource:
    """Registry factory: a TrytonSource using the context's transport and sleep."""
    client = TrytonClient(
        settings.url,
        settings.database,
        settings.username,
        settings.password.get_secret_value(),
        context={"company": settings.company},
        timeout_s=settings.timeout_s,
        verify_tls=settings.verify_tls,
        max_attempts=settings.max_attempts,
        transport=context.http_transport,
        sleep=context.sleep,
    )
    return TrytonSource(settings, client)


class TrytonSource:
    """ErpSource over Tryton stock moves (see the module docstring)."""

    name = SOURCE_NAME

    def __init__(self, settings: TrytonSettings, client: TrytonClient) -> None:
        self.settings = settings
        self.client = client
        self._tz = ZoneInfo(settings.timezone)
        self._tree: LocationTree | None = None

    def streams(self) -> Sequence[str]:
        return (STREAM_MOVES,)

    # -- pull -------------------------------------------------------------------------

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Pages of moves changed strictly after ``since`` in (change time, id) order."""
        self._check_stream(stream)
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        start: tuple[dt.datetime, int] | None = None
        if since is not None:
            last_id = int(since.tie_break) if since.tie_break.isdigit() else 0
            start = (naive(since.updated_at, self._tz), last_id)
        written = self._keyset(start, page_size, written=True)
        fresh = self._keyset(start, page_size, written=False)
        batch: list[Row] = []
        for _, _, row in heapq.merge(fresh, written):
            batch.append(row)
            if len(batch) == page_size:
                yield self._page(batch)
                batch = []
        if batch:
            yield self._page(batch)

    def _keyset(
        self, start: tuple[dt.datetime, int] | None, page_size: int, *, written: bool
    ) -> Iterator[tuple[dt.datetime, int, Row]]:
        """Moves with (or without) a write_date, after ``start``, lazily in keyset order."""
        field = "write_date" if written else "create_date"
        base: list[Any] = [["write_date", "!=" if written else "=", None]]
        position = start
        while True:
            domain = list(base)
            if position is not None:
                ts, last_id = position
                domain.append(["OR", [field, ">", ts], [[field, "=", ts], ["id", ">", last_id]]])
            rows = self.client.search_read(
                "stock.move",
                domain,
                fields=MOVE_FIELDS,
                limit=page_size,
                order=[[field, "ASC"], ["id", "ASC"]],
            )
            for row in rows:
                yield updated_at(row), int(row["id"]), row
            if len(rows) < page_size:
                return
            position = (updated_at(rows[-1]), int(rows[-1]["id"]))

    def _page(self, rows: Sequence[Row]) -> Page:
        movements, rejects = self._convert(rows)
        last = rows[-1]
        cursor = Cursor(aware(updated_at(last), self._tz), tie_break(int(last["id"])))
        return Page(STREAM_MOVES, movements, cursor, rejects)

    def _convert(self, rows: Sequence[Row]) -> tuple[list[Movement], list[RejectedRecord]]:
        tree = self._locations(rows)
        policies = self.settings.other_location_types
        movements: list[Movement] = []
        rejects: list[RejectedRecord] = []
        for row in rows:
            good, bad = move_to_movements(row, tree, self._tz, policies, self.settings.warehouses)
            movements.extend(good)
            rejects.extend(bad)
        return movements, rejects

    def _locations(self, rows: Sequence[Mapping[str, Any]] = ()) -> LocationTree:
        """The cached location tree, reloaded when a row points at a location it lacks."""
        needed = {int(r[f]) for r in rows for f in ("from_location", "to_location") if r.get(f)}
        if self._tree is None or any(loc not in self._tree for loc in needed):
            self._tree = LocationTree(
                self.client.search_read(
                    "stock.location",
                    [],
                    fields=LOCATION_FIELDS,
                    order=[["id", "ASC"]],
                    context={"active_test": False},
                )
            )
        return self._tree

    # -- window, on hand, check --------------------------------------------------------

    def keys_in_window(self, stream: str, since: dt.datetime) -> Iterator[str]:
        """Keys of moves (any state) whose business date is on or after ``since``'s day."""
        self._check_stream(stream)
        day = since.astimezone(self._tz).date() if since.tzinfo else since.date()
        domain = [
            "OR",
            [["effective_date", ">=", day]],
            [["effective_date", "=", None], ["planned_date", ">=", day]],
            [
                ["effective_date", "=", None],
                ["planned_date", "=", None],
                ["create_date", ">=", dt.datetime.combine(day, dt.time())],
            ],
        ]
        last_id = 0
        while True:
            rows = self.client.search_read(
                "stock.move",
                [domain, ["id", ">", last_id]],
                fields=MOVE_FIELDS,
                limit=500,
                order=[["id", "ASC"]],
            )
            movements, _ = self._convert(rows)
            for m in movements:
                yield m.key
            if len(rows) < 500:
                return
            last_id = int(rows[-1]["id"])

    def on_hand(self) -> Iterator[OnHand]:
        """Tryton's own ``quantity`` of every goods product per warehouse (children included)."""
        warehouses = self._locations().warehouses()
        wanted = self.settings.warehouses
        for wh_id, code in sorted(warehouses.items()):
            if not code or (wanted is not None and code not in wanted):
                continue
            rows = self.client.search_read(
                "product.product",
                [["type", "=", "goods"]],
                fields=("id", "code", "quantity"),
                order=[["id", "ASC"]],
                context={"locations": [wh_id], "active_test": False},
            )
            for row in rows:
                qty = Decimal(str(row.get("quantity") or 0))
                if qty != 0 and row.get("code"):
                    yield OnHand(str(row["code"]), code, qty)

    def check(self) -> str:
        """Log in and count warehouses: proves URL, credentials, database and stock module."""
        user_id = self.client.login()
        count = self.client.call("model.stock.location.search_count", [["type", "=", "warehouse"]])
        return (
            f"tryton database {self.settings.database!r} as {self.settings.username!r} "
            f"(uid {user_id}): {count} warehouse(s)"
        )

    def close(self) -> None:
        self.client.close()

    def _check_stream(self, stream: str) -> None:
        if stream != STREAM_MOVES:
            raise PermanentError(f"unknown tryton stream {stream!r}; known: {STREAM_MOVES}")

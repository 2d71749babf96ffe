"""Tryton as an ErpSource: stock moves pulled by (write_date, id), on-hand per warehouse.

One stream, ``moves``: every stock.move in every state, so that a move that is
cancelled (or never reached ``done``) arrives as ``active=False``. Pages follow
the keyset (change time, id) where the change time is ``write_date``, or
``create_date`` for rows never written; Tryton cannot order by that coalesce,
so the two kinds of rows are read as two keyset streams and merged.

A move is active while Tryton counts it: done and dated today or earlier, "today"
from the injected clock (architecture §10.3). Each incremental pull also re-reads the
moves whose date fell due and the moves at locations whose warehouse changed, so
a level follows Tryton's own without a new write to the moves themselves.

Reserved stock is a snapshot of the assigned moves (``reserved``), so that on
hand − reserved is Tryton's ``quantity`` with ``stock_assign`` (module ``reserved``).
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from connectors.tryton import reads
from connectors.tryton.client import TrytonClient
from connectors.tryton.mapping import (
    MOVE_FIELDS,
    SOURCE_NAME,
    STREAM_MOVES,
    LocationTree,
    OtherPolicy,
    all_leg_keys,
    aware,
    move_to_movements,
    naive,
    stocked_types,
    tie_break,
    updated_at,
    withdrawn,
)
from connectors.tryton.reserved import reserved_by_key
from sync.errors import PermanentError
from sync.model import Cursor, Movement, OnHand, Page, RejectedRecord, Reserved
from sync.ports import ConnectorContext
from sync.settings import (
    MAX_ATTEMPTS,
    MAX_INT32,
    MAX_TIMEOUT_S,
    HttpUrl,
    Secret,
    StrictModel,
    TimeZoneName,
)

Row = dict[str, Any]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrytonSettings(StrictModel):
    """Connection and mapping settings for one Tryton database."""

    type: Literal["tryton"] = Field(description="Connector name.")
    url: HttpUrl = Field(description="Base URL of trytond, e.g. https://erp.example.com:8000.")
    database: str = Field(description="Tryton database name (the server must serve it: -d).")
    username: str = Field(description="Tryton login with read access to stock and products.")
    password: Secret = Field(description="Password of that login.")
    company: int = Field(
        default=1, ge=1, le=MAX_INT32, description="Company id sent in every RPC context."
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="Per-request timeout in seconds (at most 1 hour).",
    )
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=MAX_ATTEMPTS,
        description="Attempts per RPC call on transient errors (timeouts, 5xx; at most 1000).",
    )
    warehouses: list[str] | None = Field(
        default=None,
        description="Warehouse location codes to sync; all warehouses when omitted.",
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        description="Time zone of the server's naive timestamps (run trytond with TZ=UTC).",
    )
    reservations: bool = Field(
        default=True,
        description=(
            "Read reserved stock (assigned moves out of each warehouse, as Tryton's "
            "stock_assign quantity holds them); false: the CRM shows available = on hand."
        ),
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
    def _no_trailing_slash(cls, value: str) -> str:
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
    return TrytonSource(settings, client, now=context.now)


class TrytonSource:
    """ErpSource over Tryton stock moves (see the module docstring)."""

    name = SOURCE_NAME

    def __init__(
        self,
        settings: TrytonSettings,
        client: TrytonClient,
        *,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.client = client
        self._now = now
        self._tz = ZoneInfo(settings.timezone)
        self._tree: LocationTree | None = None
        self._today_zone: dt.tzinfo | None = None
        self._types: tuple[str, ...] | None = None

    def streams(self) -> Sequence[str]:
        return (STREAM_MOVES,)

    # -- pull -------------------------------------------------------------------------

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Pages of moves changed strictly after ``since`` in (change time, id) order.

        An incremental pull (``since`` given) first re-reads, in pages that carry
        ``since`` as their cursor (no advance):

        - moves at locations whose place in the tree changed since ``since``
          (a location moved under another warehouse, a warehouse code renamed),
          mapped again; keys a move no longer has come back inactive;
        - done moves whose effective date fell due since ``since``'s day, now
          active (Tryton counts a move from its effective date, ``counts_on``).
        """
        self._check_stream(stream)
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        today = self._today()
        if since is None:
            tree = self._locations()
            start = None
        else:
            tree = yield from self._reattributed(since, page_size, today)
            yield from self._fell_due(since, page_size, today, tree)
            last_id = int(since.tie_break) if since.tie_break.isdigit() else 0
            start = (naive(since.updated_at, self._tz), last_id)
        written = reads.keyset(self.client, start, page_size, written=True)
        fresh = reads.keyset(self.client, start, page_size, written=False)
        batch: list[Row] = []
        for _, _, row in heapq.merge(fresh, written):
            batch.append(row)
            if len(batch) == page_size:
                yield self._page(batch, today)
                batch = []
        if batch:
            yield self._page(batch, today)

    def _reattributed(
        self, since: Cursor, page_size: int, today: dt.date
    ) -> Generator[Page, None, LocationTree]:
        """Pages re-mapping the moves at locations whose warehouse changed; returns the tree.

        The cached tree is replaced only once every page was taken, so a pull that
        stops half-way re-attributes again next time.
        """
        old = self._tree
        changed = reads.locations_changed(self.client, naive(since.updated_at, self._tz))
        if old is not None and not changed:
            return old
        tree = LocationTree(reads.locations(self.client))
        affected = tree.below(changed)
        if old is not None:
            affected = {loc for loc in affected if old.place(loc) != tree.place(loc)}
        if affected:
            for rows in reads.by_id(self.client, reads.touching(affected), page_size):
                yield self._remapped(rows, old, tree, since, today)
        self._tree = tree
        return tree

    def _remapped(
        self,
        rows: Sequence[Row],
        old: LocationTree | None,
        tree: LocationTree,
        since: Cursor,
        today: dt.date,
    ) -> Page:
        movements, rejects = self._convert(rows, tree, today)
        for row in rows:
            keys = set(all_leg_keys(row))
            produced = [m for m in movements if m.key in keys]
            if old is None:
                before: Sequence[str] = all_leg_keys(row)
            else:
                before = [m.key for m in self._convert([row], old, today)[0]]
            movements.extend(withdrawn(row, self._tz, produced, before))
        return Page(STREAM_MOVES, movements, since, rejects)

    def _fell_due(
        self, since: Cursor, page_size: int, today: dt.date, tree: LocationTree
    ) -> Iterator[Page]:
        """Done moves dated after ``since``'s day, up to today: they count from today on.

        ``since`` is at most the start of the last pull, whose "today" was at least
        ``since``'s day, so every move still in the future then is in this window.
        """
        after = since.updated_at.astimezone(self._zone()).date()
        if after >= today:
            return
        for rows in reads.by_id(self.client, reads.fell_due(after, today), page_size):
            movements, rejects = self._convert(rows, tree, today)
            yield Page(STREAM_MOVES, movements, since, rejects)

    def _page(self, rows: Sequence[Row], today: dt.date) -> Page:
        movements, rejects = self._convert(rows, self._locations(rows), today)
        last = rows[-1]
        cursor = Cursor(aware(updated_at(last), self._tz), tie_break(int(last["id"])))
        return Page(STREAM_MOVES, movements, cursor, rejects)

    def _convert(
        self, rows: Sequence[Row], tree: LocationTree, today: dt.date | None
    ) -> tuple[list[Movement], list[RejectedRecord]]:
        policies = self.settings.other_location_types
        wanted = self.settings.warehouses
        movements: list[Movement] = []
        rejects: list[RejectedRecord] = []
        for row in rows:
            good, bad = move_to_movements(row, tree, self._tz, policies, wanted, today=today)
            movements.extend(good)
            rejects.extend(bad)
        return movements, rejects

    def _locations(self, rows: Sequence[Mapping[str, Any]] = ()) -> LocationTree:
        """The cached location tree, reloaded when a row points at a location it lacks."""
        needed = {int(r[f]) for r in rows for f in ("from_location", "to_location") if r.get(f)}
        if self._tree is None or any(loc not in self._tree for loc in needed):
            self._tree = LocationTree(reads.locations(self.client))
        return self._tree

    def _zone(self) -> dt.tzinfo:
        """The zone of Tryton's "today": the company's when it has one, else the server's."""
        if self._today_zone is None:
            company_zone = reads.company_timezone(self.client, self.settings.company)
            self._today_zone = ZoneInfo(company_zone) if company_zone else self._tz
        return self._today_zone

    def _today(self) -> dt.date:
        """Today as Tryton counts stock (``ir.date.today``), from the injected clock."""
        return self._now().astimezone(self._zone()).date()

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
            movements, _ = self._convert(rows, self._locations(rows), None)
            for m in movements:
                yield m.key
            if len(rows) < 500:
                return
            last_id = int(rows[-1]["id"])

    def on_hand(self) -> Iterator[OnHand]:
        """Tryton's own ``quantity`` per warehouse (children included), as of today.

        Every product of a type Tryton stocks (``stocked_types``: goods and assets
        in Tryton 8), so that on-hand counts what the pull counts.
        """
        types = self._stocked_types()
        warehouses = LocationTree(reads.locations(self.client)).warehouses()
        wanted = self.settings.warehouses
        for wh_id, code in sorted(warehouses.items()):
            if not code or (wanted is not None and code not in wanted):
                continue
            rows = self.client.search_read(
                "product.product",
                [["type", "in", list(types)]],
                fields=("id", "code", "quantity"),
                order=[["id", "ASC"]],
                context={"locations": [wh_id], "active_test": False},
            )
            for row in rows:
                qty = Decimal(str(row.get("quantity") or 0))
                if qty != 0 and row.get("code"):
                    yield OnHand(str(row["code"]), code, qty)

    def reserved(self) -> list[Reserved] | None:
        """Stock Tryton holds for assigned moves, per (product, warehouse), as of today.

        One ``search_read`` of the company's assigned moves (products of the types
        ``on_hand`` reads), attributed to the warehouse their source location lies in
        (:func:`connectors.tryton.reserved.reserved_by_key`), so that on hand −
        reserved is Tryton's own ``quantity`` with ``stock_assign``. Quantities in
        the product's default unit. None when ``reservations`` is off.
        """
        if not self.settings.reservations:
            return None
        rows = reads.assigned_moves(self.client, self.settings.company, self._stocked_types())
        figures = reserved_by_key(
            rows, self._locations(rows), self._today(), self.settings.warehouses
        )
        return [Reserved(sku, wh, qty) for (sku, wh), qty in sorted(figures.items())]

    def _stocked_types(self) -> tuple[str, ...]:
        """The product types Tryton stocks, read from the server once."""
        if self._types is None:
            self._types = stocked_types(reads.stocked_product_field(self.client))
        return self._types

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

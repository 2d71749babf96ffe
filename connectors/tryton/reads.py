"""The Tryton reads a pull is made of: keyset pages of moves, id-ordered re-reads, locations.

Every function takes a logged-in :class:`TrytonClient` and returns raw rows
(dicts as ``search_read`` gives them); mapping them is :mod:`mapping`'s job.
Timestamps passed in are server-local naive datetimes (Tryton compares those).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from connectors.tryton.client import TrytonClient
from connectors.tryton.mapping import LOCATION_FIELDS, MOVE_FIELDS, updated_at
from connectors.tryton.reserved import RESERVED_FIELDS, assigned_domain

Row = dict[str, Any]
Domain = list[Any]


def keyset(
    client: TrytonClient,
    start: tuple[dt.datetime, int] | None,
    page_size: int,
    *,
    written: bool,
) -> Iterator[tuple[dt.datetime, int, Row]]:
    """Moves with (or without) a write_date after ``start``, lazily in (stamp, id) order.

    Pages until an empty page, so a server that caps ``limit`` below ``page_size``
    loses nothing.
    """
    field = "write_date" if written else "create_date"
    base: Domain = [["write_date", "!=" if written else "=", None]]
    position = start
    while True:
        domain = list(base)
        if position is not None:
            ts, last_id = position
            domain.append(["OR", [field, ">", ts], [[field, "=", ts], ["id", ">", last_id]]])
        rows = client.search_read(
            "stock.move",
            domain,
            fields=MOVE_FIELDS,
            limit=page_size,
            order=[[field, "ASC"], ["id", "ASC"]],
        )
        if not rows:
            return
        for row in rows:
            yield updated_at(row), int(row["id"]), row
        position = (updated_at(rows[-1]), int(rows[-1]["id"]))


def by_id(client: TrytonClient, domain: Domain, page_size: int) -> Iterator[list[Row]]:
    """Pages of the moves matching ``domain``, in id order (until an empty page)."""
    last_id = 0
    while True:
        rows = client.search_read(
            "stock.move",
            [domain, ["id", ">", last_id]],
            fields=MOVE_FIELDS,
            limit=page_size,
            order=[["id", "ASC"]],
        )
        if not rows:
            return
        yield rows
        last_id = int(rows[-1]["id"])


def fell_due(after: dt.date, today: dt.date) -> Domain:
    """Done moves whose effective date lies in (``after``, ``today``]: due since ``after``."""
    return [
        ["state", "=", "done"],
        ["effective_date", ">", after],
        ["effective_date", "<=", today],
    ]


def touching(location_ids: Iterable[int]) -> Domain:
    """Moves from or to any of ``location_ids``."""
    ids = sorted(location_ids)
    return ["OR", [["from_location", "in", ids]], [["to_location", "in", ids]]]


def locations(client: TrytonClient) -> list[Row]:
    """Every location, archived ones included (old moves may point at them)."""
    return client.search_read(
        "stock.location",
        [],
        fields=LOCATION_FIELDS,
        order=[["id", "ASC"]],
        context={"active_test": False},
    )


def locations_changed(client: TrytonClient, since: dt.datetime) -> list[int]:
    """Ids of locations created or written after ``since`` (a move of a parent, a code)."""
    domain = [
        "OR",
        [["write_date", ">", since]],
        [["write_date", "=", None], ["create_date", ">", since]],
    ]
    rows = client.search_read(
        "stock.location",
        domain,
        fields=("id",),
        order=[["id", "ASC"]],
        context={"active_test": False},
    )
    return [int(r["id"]) for r in rows]


def company_timezone(client: TrytonClient, company: int) -> str | None:
    """The company's time zone, which Tryton's "today" follows (``ir.date.today``), or None."""
    rows = client.search_read(
        "company.company", [["id", "=", company]], fields=("id", "timezone"), limit=1
    )
    zone = rows[0].get("timezone") if rows else None
    return str(zone) if zone else None


def assigned_moves(client: TrytonClient, company: int, product_types: Sequence[str]) -> list[Row]:
    """Every assigned move of ``company`` whose product is of ``product_types``, in ONE
    ``search_read`` (no limit): the cost grows with the assigned moves, not the products."""
    return client.search_read(
        "stock.move",
        assigned_domain(company, product_types),
        fields=RESERVED_FIELDS,
        order=[["id", "ASC"]],
    )


def stocked_product_field(client: TrytonClient) -> dict[str, Any]:
    """``fields_get`` of ``stock.move.product`` (its domain names the stocked product types)."""
    fields = client.call("model.stock.move.fields_get", ["product"])
    product = fields.get("product") if isinstance(fields, dict) else None
    return product if isinstance(product, dict) else {}

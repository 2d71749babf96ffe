"""More proteus steps on a real Tryton: what on-hand counts (types, dates, units, locations).

Like ``tests.tryton.scenario``: every step is a user's action through Tryton's own
models, ``config`` is a proteus config passed explicitly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

from tests.tryton import scenario


def product(config: Any, sku: str, kind: str = "goods", *, consumable: bool = False) -> None:
    """A purchasable, salable product of type ``kind`` kept in units (created once)."""
    from proteus import Model

    Template = Model.get("product.template", config=config)
    if Template.find([("code", "=", sku)]):
        return
    (unit,) = Model.get("product.uom", config=config).find([("name", "=", "Unit")])
    Template(
        name=sku,
        code=sku,
        type=kind,
        consumable=consumable,
        default_uom=unit,
        list_price=Decimal(10),
        purchasable=True,
        salable=True,
    ).save()


def dozen(config: Any) -> Any:
    """The unit "Dozen" (12 units, category Units), created once."""
    from proteus import Model

    Uom = Model.get("product.uom", config=config)
    found = Uom.find([("name", "=", "Dozen")])
    if found:
        return found[0]
    (unit,) = Uom.find([("name", "=", "Unit")])
    uom = Uom(name="Dozen", symbol="dz", category=unit.category, factor=12, rounding=1)
    uom.save()
    return uom


def lost_found(config: Any) -> Any:
    from proteus import Model

    (loc,) = Model.get("stock.location", config=config).find([("type", "=", "lost_found")])
    return loc


def move_done(
    config: Any,
    sku: str,
    qty: int,
    src: Any,
    dst: Any,
    *,
    effective_date: dt.date | None = None,
    unit: Any = None,
) -> int:
    """A bare stock move, done; a future ``effective_date`` is confirmed as a user would.

    Tryton raises a warning for a done move dated in the future; the user
    confirms it, which stores a ``res.user.warning`` under the name
    ``Warning.format`` computes (md5 of the move ids + ".effective_date_future").
    """
    from proteus import Model

    move = scenario._new_move(config, sku, qty, src, dst)
    if unit is not None:
        move.unit = unit
    move.effective_date = effective_date
    move.save()
    if effective_date is not None and effective_date > dt.date.today():
        digest = hashlib.md5(f"stock.move,{move.id}".encode()).hexdigest()
        (admin,) = Model.get("res.user", config=config).find([("login", "=", "admin")])
        Warning = Model.get("res.user.warning", config=config)
        Warning(user=admin, name=f"{digest}.effective_date_future", always=False).save()
    move.click("do")
    scenario._expect_state(move, "done")
    return int(move.id)


def location(config: Any, code: str, parent: Any) -> Any:
    """A storage location ``code`` under ``parent`` (created once)."""
    from proteus import Model

    Location = Model.get("stock.location", config=config)
    found = Location.find([("code", "=", code)])
    if found:
        return found[0]
    loc = Location(name=code, code=code, type="storage", parent=parent)
    loc.save()
    return loc


def reparent(config: Any, loc: Any, parent: Any) -> None:
    """Move a location (and its stock) under another parent."""
    from proteus import Model

    record = Model.get("stock.location", config=config)(loc.id)
    record.parent = parent
    record.save()


def recode(config: Any, old: str, new: str | None) -> None:
    """Rename a warehouse's code (None removes it)."""
    wh = scenario._warehouse(config, old)
    wh.code = new
    wh.save()


def uncoded_warehouse(config: Any, name: str = "No-code warehouse") -> Any:
    """A warehouse without a code (a copy of WH with its code cleared), created once."""
    from proteus import Model

    Location = Model.get("stock.location", config=config)
    found = Location.find([("name", "=", name), ("type", "=", "warehouse")])
    if found:
        return found[0]
    (wh,) = Location.duplicate([scenario._warehouse(config, "WH")], default={"name": name})
    wh.code = None
    wh.save()
    return wh


def cancelled_sale(config: Any, warehouse: str, lines: dict[str, int]) -> list[int]:
    """A sale whose shipment got assigned (stock reserved) and was then cancelled.

    Returns its move ids, all cancelled: never counted by Tryton."""
    sale = scenario._confirmed_sale(config, warehouse, lines)
    (shipment,) = sale.shipments
    scenario._click(shipment, "assign_try")
    scenario._expect_state(shipment, "assigned")
    shipment.click("cancel")
    scenario._expect_state(shipment, "cancelled")
    states = {m.state for m in shipment.moves}
    assert states == {"cancelled"}, states
    return [int(m.id) for m in shipment.moves]


def quantities_at(config: Any, day: dt.date, codes: list[str]) -> dict[tuple[str, str], Decimal]:
    """Tryton's own quantity per (sku, warehouse code) on ``day``, every product type.

    For a future ``day`` Tryton's forecast counts done moves up to today plus the
    moves of any open state dated up to ``day``; the caller checks there are no
    open ones in that span, so this is the on-hand Tryton will show on ``day``.
    """
    from proteus import Model

    Product = Model.get("product.product", config=config)
    result: dict[tuple[str, str], Decimal] = {}
    for code in codes:
        wh = scenario._warehouse(config, code)
        context = {"locations": [wh.id], "stock_date_end": day}
        with config.set_context(context):
            for row in Product.find([]):
                field = "forecast_quantity" if day > dt.date.today() else "quantity"
                qty = Decimal(str(getattr(row, field) or 0))
                if qty:
                    result[(row.code, code)] = qty
    return result


def open_moves_between(config: Any, start: dt.date, end: dt.date) -> int:
    """Open moves a forecast up to ``end`` would count: assigned ones (dated today) and
    draft ones planned in [start, end]."""
    from proteus import Model

    Move = Model.get("stock.move", config=config)
    assigned = Move.find([("state", "=", "assigned")])
    draft = Move.find(
        [
            ("state", "in", ["draft", "staging"]),
            ("planned_date", ">=", start),
            ("planned_date", "<=", end),
        ]
    )
    return len(assigned) + len(draft)


def internal(config: Any, src: Any, dst: Any, lines: dict[str, int]) -> int:
    """Internal shipment between two locations (through transit between warehouses), done.

    Returns the ``stock.shipment.internal`` id."""
    shipment_id = internal_assigned(config, src, dst, lines)
    internal_done(config, shipment_id)
    return shipment_id


def internal_assigned(config: Any, src: Any, dst: Any, lines: dict[str, int]) -> int:
    """Internal shipment from ``src`` to ``dst``, waiting then assigned (not shipped).

    Returns the ``stock.shipment.internal`` id."""
    from proteus import Model

    shipment = Model.get("stock.shipment.internal", config=config)()
    shipment.from_location = src
    shipment.to_location = dst
    shipment.planned_date = dt.date.today()
    for sku, qty in lines.items():
        shipment.moves.append(scenario._new_move(config, sku, qty, src, dst))
    shipment.save()
    scenario._click(shipment, "wait", "assign_try")
    scenario._expect_state(shipment, "assigned")
    return int(shipment.id)


def internal_done(config: Any, shipment_id: int) -> None:
    """Ship (through transit, when there is one) and do an assigned internal shipment."""
    from proteus import Model

    shipment = Model.get("stock.shipment.internal", config=config)(shipment_id)
    if shipment.transit_location:
        scenario._click(shipment, "pack", "ship")
    shipment.click("do")
    scenario._expect_state(shipment, "done")

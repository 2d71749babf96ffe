"""Proteus scenario steps on a real Tryton: company setup and business documents.

Every step drives Tryton's own documents the way a user would: purchases and
sales (``purchase``/``sale`` modules, ``invoice_method='manual'`` so no chart of
accounts is needed) create the stock moves, and their shipments are received,
picked, packed and done. Internal shipments and inventories come from ``stock``.
Each step takes the warehouse by code (``WH`` or ``WH2``); the purchase or sale
carries that warehouse, so the moves land in it.

``config`` is always a proteus config passed explicitly (never the global one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

SKUS = ("SKU-001", "SKU-002", "SKU-003")
WAREHOUSES = ("WH", "WH2")
SUPPLIER = "Supplier"
CUSTOMER = "Customer"
#: user groups the admin needs to work the documents over RPC
GROUPS = (
    "Stock",
    "Stock Administration",
    "Stock Cancellation",
    "Purchase",
    "Purchase Administrator",
    "Sales",
    "Sales Administrator",
)


def base_setup(config: Any, admin_login: str) -> None:
    """Company (USD), a second warehouse WH2, parties and goods products SKU-001..003."""
    from proteus import Model, Wizard

    Currency = Model.get("currency.currency", config=config)
    Party = Model.get("party.party", config=config)
    User = Model.get("res.user", config=config)
    Group = Model.get("res.group", config=config)
    currency = Currency(name="U.S. Dollar", symbol="$", code="USD", rounding=Decimal("0.01"))
    currency.save()
    wizard = Wizard("company.company.config", config=config)
    wizard.execute("company")
    company_party = Party(name="Stocksync Test Co")
    company_party.save()
    wizard.form.party = company_party
    wizard.form.currency = currency
    wizard.execute("add")
    config._context = User.get_preferences(True, {})

    admin = User(config.context.get("user") or User.find([("login", "=", admin_login)])[0].id)
    for group in Group.find([("name", "in", list(GROUPS))]):
        if group not in admin.groups:
            admin.groups.append(group)
    admin.save()

    Party(name=SUPPLIER).save()
    Party(name=CUSTOMER).save()

    Location = Model.get("stock.location", config=config)
    (wh,) = Location.find([("code", "=", "WH"), ("type", "=", "warehouse")])
    (wh2,) = Location.duplicate([wh], default={"name": "Warehouse 2", "code": "WH2"})
    for loc, code in (
        (wh2.input_location, "IN2"),
        (wh2.output_location, "OUT2"),
        (wh2.storage_location, "STO2"),
    ):
        loc.code = code
        loc.save()

    Uom = Model.get("product.uom", config=config)
    Template = Model.get("product.template", config=config)
    (unit,) = Uom.find([("name", "=", "Unit")])
    for i, sku in enumerate(SKUS, start=1):
        Template(
            name=f"Product {i}",
            code=sku,
            type="goods",
            default_uom=unit,
            list_price=Decimal(10),
            purchasable=True,
            salable=True,
        ).save()
    Template(name="Service", code="SRV-1", type="service", default_uom=unit).save()


# -- look-ups -----------------------------------------------------------------------------


def _warehouse(config: Any, code: str) -> Any:
    from proteus import Model

    Location = Model.get("stock.location", config=config)
    (wh,) = Location.find([("code", "=", code), ("type", "=", "warehouse")])
    return wh


def _product(config: Any, sku: str) -> Any:
    from proteus import Model

    (product,) = Model.get("product.product", config=config).find([("code", "=", sku)])
    return product


def _party(config: Any, name: str) -> Any:
    from proteus import Model

    (party,) = Model.get("party.party", config=config).find([("name", "=", name)])
    return party


def _company_currency(config: Any) -> Any:
    from proteus import Model

    (company,) = Model.get("company.company", config=config).find([])
    return company.currency


def _new_move(config: Any, sku: str, qty: int, src: Any, dst: Any) -> Any:
    from proteus import Model

    product = _product(config, sku)
    move = Model.get("stock.move", config=config)()
    move.product = product
    move.unit = product.default_uom
    move.quantity = qty
    move.from_location = src
    move.to_location = dst
    return move


def _click(record: Any, *buttons: str) -> None:
    for button in buttons:
        record.click(button)


def _expect_state(record: Any, state: str) -> None:
    if record.state != state:
        raise AssertionError(
            f"{record.__class__.__name__} {record.id} is {record.state}, not {state}"
        )


# -- purchases ----------------------------------------------------------------------------


def _confirmed_purchase(config: Any, warehouse: str, lines: Mapping[str, int]) -> Any:
    """A purchase from the supplier into ``warehouse``, quoted and confirmed."""
    from proteus import Model

    purchase = Model.get("purchase.purchase", config=config)()
    purchase.party = _party(config, SUPPLIER)
    purchase.warehouse = _warehouse(config, warehouse)
    purchase.invoice_method = "manual"
    for sku, qty in lines.items():
        line = purchase.lines.new()
        line.product = _product(config, sku)
        line.quantity = qty
        line.unit_price = Decimal(5)
    purchase.save()
    _click(purchase, "quote", "confirm")
    _expect_state(purchase, "processing")
    return purchase


def purchase_received(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Purchase confirmed, all its moves received in ONE supplier shipment and done.

    ``receive`` does all the incoming (supplier → input) moves in one
    transaction, so they share one write_date; ``do`` then does the input →
    storage moves together. Returns the ``stock.shipment.in`` id.
    """
    from proteus import Model

    purchase = _confirmed_purchase(config, warehouse, lines)
    Move = Model.get("stock.move", config=config)
    shipment = Model.get("stock.shipment.in", config=config)()
    shipment.supplier = purchase.party
    shipment.warehouse = purchase.warehouse
    for move in purchase.moves:
        shipment.incoming_moves.append(Move(move.id))
    shipment.save()
    _click(shipment, "receive", "do")
    _expect_state(shipment, "done")
    return int(shipment.id)


def purchase_returned(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Purchase with negative lines: Tryton's supplier return shipment, assigned and done.

    Returns the ``stock.shipment.in.return`` id.
    """
    purchase = _confirmed_purchase(config, warehouse, {sku: -qty for sku, qty in lines.items()})
    (shipment,) = purchase.shipment_returns
    _click(shipment, "assign_try")
    _expect_state(shipment, "assigned")
    _click(shipment, "do")
    _expect_state(shipment, "done")
    return int(shipment.id)


# -- sales --------------------------------------------------------------------------------


def _confirmed_sale(config: Any, warehouse: str, lines: Mapping[str, int]) -> Any:
    """A sale to the customer from ``warehouse``, shipped on order, quoted and confirmed."""
    from proteus import Model

    sale = Model.get("sale.sale", config=config)()
    sale.party = _party(config, CUSTOMER)
    sale.warehouse = _warehouse(config, warehouse)
    sale.invoice_method = "manual"
    sale.shipment_method = "order"
    for sku, qty in lines.items():
        line = sale.lines.new()
        line.product = _product(config, sku)
        line.quantity = qty
    sale.save()
    _click(sale, "quote", "confirm")
    _expect_state(sale, "processing")
    return sale


def sale_shipped(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Sale confirmed; its customer shipment assigned (stock must be there), picked,
    packed and done. Returns the ``stock.shipment.out`` id."""
    shipment_id = sale_assigned(config, warehouse, lines)
    shipment_out(config, shipment_id, "pick", "pack", "do", state="done")
    return shipment_id


def sale_assigned(
    config: Any, warehouse: str, lines: Mapping[str, int], *, whole: bool = True
) -> int:
    """Sale confirmed; its customer shipment tried for assignment (``assign_try``), not shipped.

    With ``whole`` the shipment must end ``assigned`` (its storage → output moves
    hold the stock); otherwise it may stay ``waiting`` with only what was there
    assigned (Tryton splits a move it can fill in part). Returns the shipment id.
    """
    sale = _confirmed_sale(config, warehouse, lines)
    (shipment,) = sale.shipments
    _click(shipment, "assign_try")
    if whole:
        _expect_state(shipment, "assigned")
    return int(shipment.id)


def shipment_out(config: Any, shipment_id: int, *buttons: str, state: str) -> Any:
    """Click ``buttons`` on a customer shipment, which must then be in ``state``.

    ``assign_force`` needs the group "Stock Force Assignment", granted here."""
    from proteus import Model

    if "assign_force" in buttons:
        _grant(config, "Stock Force Assignment")
    shipment = Model.get("stock.shipment.out", config=config)(shipment_id)
    _click(shipment, *buttons)
    _expect_state(shipment, state)
    return shipment


def _grant(config: Any, group_name: str) -> None:
    from proteus import Model

    User = Model.get("res.user", config=config)
    (admin,) = User.find([("login", "=", "admin")])
    (group,) = Model.get("res.group", config=config).find([("name", "=", group_name)])
    if group not in admin.groups:
        admin.groups.append(group)
        admin.save()


def sale_return(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Customer return: a sale with negative lines; its return shipment received and done
    into ``warehouse``. Returns the ``stock.shipment.out.return`` id."""
    sale = _confirmed_sale(config, warehouse, {sku: -qty for sku, qty in lines.items()})
    (shipment,) = sale.shipment_returns
    _click(shipment, "receive", "do")
    _expect_state(shipment, "done")
    return int(shipment.id)


# -- stock documents ----------------------------------------------------------------------


def transfer(config: Any, src: str, dst: str, lines: Mapping[str, int]) -> int:
    """Internal shipment between two warehouses' storage zones (through transit), done."""
    from proteus import Model

    from_wh, to_wh = _warehouse(config, src), _warehouse(config, dst)
    shipment = Model.get("stock.shipment.internal", config=config)()
    shipment.from_location = from_wh.storage_location
    shipment.to_location = to_wh.storage_location
    shipment.planned_date = dt.date.today()
    for sku, qty in lines.items():
        shipment.moves.append(
            _new_move(config, sku, qty, shipment.from_location, shipment.to_location)
        )
    shipment.save()
    _click(shipment, "wait", "assign_try")
    _expect_state(shipment, "assigned")
    if shipment.transit_location:
        _click(shipment, "pack", "ship")
    _click(shipment, "do")
    _expect_state(shipment, "done")
    return int(shipment.id)


def stocktake(config: Any, warehouse: str, deltas: Mapping[str, int]) -> int:
    """Inventory of ``warehouse``'s storage zone, counted ``expected + delta`` for the
    SKUs in ``deltas``; the other lines are left uncounted and keep their quantity."""
    from proteus import Model

    wh = _warehouse(config, warehouse)
    inventory = Model.get("stock.inventory", config=config)()
    inventory.location = wh.storage_location
    inventory.empty_quantity = "keep"
    inventory.save()
    inventory.click("complete_lines")
    for line in inventory.lines:
        if line.product.code in deltas:
            line.quantity = (line.expected_quantity or 0) + deltas[line.product.code]
    inventory.save()
    inventory.click("confirm")
    _expect_state(inventory, "done")
    return int(inventory.id)


def cancel_shipment_in(config: Any, shipment_id: int) -> list[int]:
    """Cancel a done supplier shipment (needs Stock Cancellation); returns its move ids."""
    from proteus import Model

    shipment = Model.get("stock.shipment.in", config=config)(shipment_id)
    shipment.click("cancel")
    return [int(m.id) for m in shipment.moves]


def shipment_in_stamps(config: Any, shipment_id: int) -> list[dt.datetime]:
    """The write_date of each incoming (supplier → input) move of a supplier shipment.

    Those are the moves that cross the warehouse's boundary; ``receive`` does
    them all in one transaction."""
    from proteus import Model

    shipment = Model.get("stock.shipment.in", config=config)(shipment_id)
    return [m.write_date for m in shipment.incoming_moves]


# -- truth --------------------------------------------------------------------------------


def product_codes(config: Any) -> list[str]:
    """Codes of every product Tryton stocks (goods, assets), whoever created it: a CRM
    that must mirror every key needs them all (test modules share one server)."""
    from proteus import Model

    Product = Model.get("product.product", config=config)
    found = Product.find([("type", "in", ["goods", "assets"])])
    return sorted({str(p.code) for p in found if p.code})


def warehouse_quantities(config: Any) -> dict[tuple[str, str], Decimal]:
    """Tryton's own on-hand per (sku, warehouse code), non-zero only, every product type.

    Every type, not only goods: assets and consumables hold stock too and stocksync syncs
    them (tests/tryton/test_what_counts.py adds some to the shared server; a file that runs
    after it on the same test worker sees them)."""
    from proteus import Model

    Product = Model.get("product.product", config=config)
    result: dict[tuple[str, str], Decimal] = {}
    for code in WAREHOUSES:
        wh = _warehouse(config, code)
        with config.set_context(locations=[wh.id]):
            for product in Product.find([]):
                qty = Decimal(str(product.quantity or 0))
                if qty:
                    result[(product.code, code)] = qty
    return result


def initial_scenario(config: Any) -> dict[str, int]:
    """Phase 1 documents: purchases received into both warehouses, a sale shipped, a
    customer return, a purchase return, a transfer WH→WH2 and a stocktake with a
    difference. Returns the shipment/inventory ids by name."""
    return {
        "purchase": purchase_received(config, "WH", {"SKU-001": 50, "SKU-002": 30}),
        "purchase2": purchase_received(config, "WH2", {"SKU-001": 20}),
        "sale": sale_shipped(config, "WH", {"SKU-001": 8}),
        "customer_return": sale_return(config, "WH", {"SKU-001": 2}),
        "supplier_return": purchase_returned(config, "WH", {"SKU-002": 4}),
        "transfer": transfer(config, "WH", "WH2", {"SKU-002": 5}),
        "stocktake": stocktake(config, "WH", {"SKU-001": -3, "SKU-002": 1}),
    }

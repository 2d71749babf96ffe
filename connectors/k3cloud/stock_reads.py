"""STK_Inventory reads of the K/3 Cloud source: on hand (FBaseQty) and reserved (FBaseLockQty).

Both read only the rows whose figure is non-zero, keyset-paged by FID (one id per
stock dimension: rows that change while the snapshot is read cannot push another
row out of it), and sum per material × warehouse over lots, locations and stock
statuses, in the material's base unit (k3cloud-stock-quantities.md §1.1).

Available in the CRM is the ledger's on hand − FBaseLockQty, not the ERP's
FBaseAvbQty: on hand (real) comes from the ledger of movements, so subtracting the
lock from it keeps real, available and blocked consistent with each other in the
CRM whatever the ledger holds. FBaseAvbQty = FBaseQty − FBaseLockQty per row (§1.1,
checked in ``connectors.k3cloud.locks``), so it is the same figure whenever the
ledger equals the ERP; a lock over stock shows as available below zero either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal

from connectors.k3cloud.client import K3CloudClient
from connectors.k3cloud.mapping import parse_qty
from sync.model import OnHand, Reserved

INVENTORY_FORM = "STK_Inventory"
#: rows per answer of the window rescan and the inventory snapshots (reference §6: ≤ 2000)
SCAN_PAGE_SIZE = 2000


def inventory_totals(
    client: K3CloudClient,
    qty_key: str,
    filter_for: Callable[[str], str],
    in_scope: Callable[[str], bool],
    *,
    where: str,
    page_size: int = SCAN_PAGE_SIZE,
) -> dict[tuple[str, str], Decimal]:
    """``qty_key`` of the STK_Inventory rows where it is non-zero, summed per (material,
    warehouse number); rows without either, or out of scope, are skipped.

    ``filter_for(condition)`` adds the source's org scope to the condition. Costs
    ceil(R / page_size) + 1 queries for R such rows (the last answer is empty).
    Raises what ``client.iter_keyset`` raises (MsgCode 9 on ``qty_key``: a
    ConfigError pointing at ``where``).
    """
    query = {
        "FormId": INVENTORY_FORM,
        "FieldKeys": f"FMaterialId.FNumber,FStockId.FNumber,{qty_key},FID",
        "FilterString": filter_for(f"{qty_key} <> 0"),
        "SubSystemId": "",
    }
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for rows in client.iter_keyset(query, [("FID", 3, "str")], page_size=page_size, where=where):
        for material, warehouse, qty, _ in rows:
            if not material or not warehouse or not in_scope(str(warehouse)):
                continue
            totals[(str(material), str(warehouse))] += parse_qty(qty)
    return totals


def on_hand(
    client: K3CloudClient, filter_for: Callable[[str], str], in_scope: Callable[[str], bool]
) -> Iterator[OnHand]:
    """FBaseQty per material × warehouse, non-zero totals only, sorted by key."""
    totals = inventory_totals(client, "FBaseQty", filter_for, in_scope, where="erp.on_hand")
    for (sku, warehouse), qty in sorted(totals.items()):
        if qty != 0:
            yield OnHand(sku=sku, warehouse=warehouse, qty=qty)


def reserved(
    client: K3CloudClient,
    filter_for: Callable[[str], str],
    in_scope: Callable[[str], bool],
    *,
    page_size: int = SCAN_PAGE_SIZE,
) -> list[Reserved]:
    """FBaseLockQty (locked / reserved, base unit) per material × warehouse, non-zero
    totals only, sorted by key: a snapshot whose cost grows with the locked rows, not
    with the inventory (``sync.ports.ErpSource.reserved``)."""
    totals = inventory_totals(
        client,
        "FBaseLockQty",
        filter_for,
        in_scope,
        where="erp.reservations",
        page_size=page_size,
    )
    return [
        Reserved(sku=sku, warehouse=warehouse, qty=qty)
        for (sku, warehouse), qty in sorted(totals.items())
        if qty != 0
    ]

"""The products and warehouses the emulators' demo data share: one definition, two emulators.

The K/3 Cloud emulator's ``demo`` scenario moves stock of these materials in these
warehouses; the Fxiaoke emulator's ``demo`` scenario holds a ProductObj and a WarehouseObj
for each, so that a config pairing ``stocksync emulator k3cloud --scenario demo`` with
``stocksync emulator fxiaoke --scenario demo`` syncs every row instead of blocking it as
``unmapped_sku`` / ``unmapped_warehouse``. Add a code here, never to one side alone.
"""

from __future__ import annotations

#: K/3 Cloud material number (FMaterialId.FNumber) = Fxiaoke ProductObj.product_code → name
K3CLOUD_DEMO_MATERIALS = {
    "1.01.001": "Hex bolt M8×30",
    "1.01.002": "Hex nut M8",
    "1.02.001": "Flat washer 8 mm",
    "2.01.001": "Toolbox, steel",
}
#: K/3 Cloud warehouse number (FStockId.FNumber) = Fxiaoke WarehouseObj.number → name
K3CLOUD_DEMO_WAREHOUSES = {
    "CK001": "Main warehouse (CK001)",
    "CK002": "Branch warehouse (CK002)",
    "CK003": "Returns warehouse (CK003)",
}

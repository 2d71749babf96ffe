"""The emulator's base data: materials and their base units, unit conversions, and
the stock organisation each warehouse belongs to.

Served as BD_MATERIAL (``FNumber``, ``FBaseUnitId.FNumber``) and
BD_UNITCONVERTRATE (``FMaterialId.FNumber``, ``FCurrentUnitId.FNumber``,
``FDestUnitId.FNumber``, ``FConvertNumerator``, ``FConvertDenominator``; qty in
dest = qty in current × numerator / denominator). These keys are inferred
(see ``connectors/k3cloud/units.py``); k3cloud-stock-quantities.md §1.2 only says
the conversion comes from the material's units.

A material nobody declared has base unit ``Pcs`` and a warehouse nobody declared
belongs to org ``100``, so tests that do not care about units or orgs need not say.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connectors.k3cloud.query import FieldType, Row

MATERIAL_FORM = "BD_MATERIAL"
CONVERSION_FORM = "BD_UNITCONVERTRATE"
DEFAULT_UNIT = "Pcs"
DEFAULT_ORG = "100"
MASTER_TYPES: dict[str, dict[str, FieldType]] = {
    MATERIAL_FORM: {"FMaterialId": "num", "FNumber": "str", "FBaseUnitId.FNumber": "str"},
    CONVERSION_FORM: {
        "FID": "num",
        "FMaterialId.FNumber": "str",
        "FCurrentUnitId.FNumber": "str",
        "FDestUnitId.FNumber": "str",
        "FConvertNumerator": "num",
        "FConvertDenominator": "num",
    },
}


class Catalog:
    """Materials, conversions and warehouse orgs; mutated through the emulator."""

    def __init__(self) -> None:
        self.base_units: dict[str, str] = {}
        #: (material, unit) → (numerator, denominator) to the material's base unit
        self.conversions: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self.warehouse_orgs: dict[str, str] = {}

    def base_unit(self, material: str) -> str:
        return self.base_units.get(material, DEFAULT_UNIT)

    def org_of(self, warehouse: str) -> str:
        return self.warehouse_orgs.get(warehouse, DEFAULT_ORG)

    def to_base(self, material: str, unit: str, qty: Any) -> Any:
        """``qty`` in ``unit`` as base qty, as the ERP computes it when a line is saved.

        Raises ValueError for a unit without a conversion (K/3 Cloud refuses to save
        such a line); non-numbers are kept raw (the emulator's bad-data cases).
        """
        if unit == self.base_unit(material) or not isinstance(qty, Decimal):
            return qty
        rate = self.conversions.get((material, unit))
        if rate is None:
            raise ValueError(
                f"material {material} has no conversion from {unit} to {self.base_unit(material)}"
            )
        return qty * rate[0] / rate[1]

    def rows(self, form_id: str) -> list[Row]:
        """BD_MATERIAL or BD_UNITCONVERTRATE as flat rows keyed by lower-case field key."""
        if form_id == MATERIAL_FORM:
            return [
                {"fmaterialid": index, "fnumber": material, "fbaseunitid.fnumber": unit}
                for index, (material, unit) in enumerate(sorted(self.base_units.items()), 1)
            ]
        return [
            {
                "fid": index,
                "fmaterialid.fnumber": material,
                "fcurrentunitid.fnumber": unit,
                "fdestunitid.fnumber": self.base_unit(material),
                "fconvertnumerator": numerator,
                "fconvertdenominator": denominator,
            }
            for index, ((material, unit), (numerator, denominator)) in enumerate(
                sorted(self.conversions.items()), 1
            )
        ]


def master_fields(form_id: str) -> Mapping[str, FieldType]:
    return MASTER_TYPES[form_id]

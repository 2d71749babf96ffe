"""Line quantities → base-unit quantities, for a server that has no base-qty key.

The ledger counts every quantity in the material's base unit, the unit of
STK_Inventory FBaseQty (k3cloud-stock-quantities.md §1.1). A stream normally
reads the form's base-qty key (§1.2); when the server rejects that key (MsgCode 9)
the stream reads the line unit (FUnitID) and line quantity instead, and this table
converts them, following §1.2's recommendation.

What is inferred here [I], to confirm on a real server:

- ``BD_MATERIAL`` answers ``FNumber`` and ``FBaseUnitId.FNumber`` (the material's
  base unit, T_BD_MATERIALBASE.FBASEUNITID).
- ``BD_UNITCONVERTRATE`` (T_BD_UNITCONVERTRATE, 单位换算) answers
  ``FMaterialId.FNumber``, ``FCurrentUnitId.FNumber``, ``FDestUnitId.FNumber``,
  ``FConvertNumerator`` and ``FConvertDenominator``, with
  qty in dest = qty in current × numerator / denominator (integrators' SQL:
  ``FQty * FCONVERTNUMERATOR / FCONVERTDENOMINATOR as 基本单位数量`` where the
  current unit is the line's). A row without a material applies to every material.
- Conversions held only on the unit group (BD_UNIT) and floating conversions
  (浮动换算, a base qty typed on each line) are not read: such a line has no rate
  here and is quarantined, never counted in the wrong unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact
from typing import Any, Protocol

MATERIAL_FORM = "BD_MATERIAL"
CONVERSION_FORM = "BD_UNITCONVERTRATE"
MATERIAL_KEYS = ("FNumber", "FBaseUnitId.FNumber")
CONVERSION_KEYS = (
    "FMaterialId.FNumber",
    "FCurrentUnitId.FNumber",
    "FDestUnitId.FNumber",
    "FConvertNumerator",
    "FConvertDenominator",
)
#: a conversion must give the exact base quantity; one that would round is refused
_EXACT = Context(prec=60, traps=[Inexact])


class RowReader(Protocol):
    """What the table needs from the client: paged ExecuteBillQuery rows."""

    def iter_bill_query(
        self, query: dict[str, Any], *, page_size: int, where: str
    ) -> Iterable[list[list[Any]]]: ...


@dataclass(frozen=True, slots=True)
class UnitTable:
    """Base unit per material and conversion rates to it.

    ``rates[(material, unit, base_unit)] = (numerator, denominator)``; material ""
    is a rate for every material.
    """

    base_units: Mapping[str, str]
    rates: Mapping[tuple[str, str, str], tuple[Decimal, Decimal]]

    def to_base(self, material: str, unit: Any, qty: Decimal) -> Decimal:
        """``qty`` in ``unit`` as the material's base unit, exactly.

        Raises ValueError naming the material, the unit and what is missing when the
        line cannot be converted (no base unit, no rate, or an inexact result).
        """
        base = self.base_units.get(material)
        if not base:
            raise ValueError(f"material {material} has no base unit in {MATERIAL_FORM}")
        code = unit if type(unit) is str else str(unit or "")
        if not code:
            raise ValueError(f"line of material {material} has no unit (FUnitID)")
        if code == base:
            return qty
        rate = self.rates.get((material, code, base)) or self.rates.get(("", code, base))
        if rate is None:
            raise ValueError(
                f"no conversion from unit {code} to base unit {base} of material {material} "
                f"in {CONVERSION_FORM}; line not counted"
            )
        try:
            return _EXACT.divide(_EXACT.multiply(qty, rate[0]), rate[1])
        except Inexact:
            raise ValueError(
                f"{qty} {code} of material {material} is no exact quantity of {base} "
                f"({rate[0]}/{rate[1]}); line not counted"
            ) from None

    @classmethod
    def from_rows(
        cls, materials: Iterable[list[Any]], conversions: Iterable[list[Any]]
    ) -> UnitTable:
        """From rows in MATERIAL_KEYS and CONVERSION_KEYS order; unusable rows are skipped
        (a line needing them is then quarantined with the reason)."""
        base_units = {str(m): str(b) for m, b in materials if m and b}
        rates: dict[tuple[str, str, str], tuple[Decimal, Decimal]] = {}
        for material, current, dest, numerator, denominator in conversions:
            try:
                num, den = Decimal(str(numerator)), Decimal(str(denominator))
            except ArithmeticError:
                continue
            if not current or not dest or not num.is_finite() or not den.is_finite():
                continue
            if num <= 0 or den <= 0:
                continue
            mat = str(material or "")
            rates.setdefault((mat, str(current), str(dest)), (num, den))
            # the reverse row serves too: base → unit read backwards
            rates.setdefault((mat, str(dest), str(current)), (den, num))
        return cls(base_units, rates)

    @classmethod
    def load(cls, reader: RowReader, *, page_size: int, where: str) -> UnitTable:
        """Read every material's base unit and every conversion rate (two paged queries)."""
        materials = _all_rows(reader, MATERIAL_FORM, MATERIAL_KEYS, page_size, where)
        conversions = _all_rows(reader, CONVERSION_FORM, CONVERSION_KEYS, page_size, where)
        return cls.from_rows(materials, conversions)


def _all_rows(
    reader: RowReader, form: str, keys: tuple[str, ...], page_size: int, where: str
) -> list[list[Any]]:
    query = {
        "FormId": form,
        "FieldKeys": ",".join(keys),
        "FilterString": "",
        # every text key, so that offset paging sees one stable order
        "OrderString": ", ".join(f"{key} ASC" for key in keys if key.endswith("FNumber")),
        "SubSystemId": "",
    }
    rows: list[list[Any]] = []
    for page in reader.iter_bill_query(query, page_size=page_size, where=where):
        rows.extend(row for row in page if len(row) == len(keys))
    return rows

"""Customer demand, defined (architecture §7.2, issue 20). Pure: no I/O.

Customer demand of one product × warehouse = shipments − customer returns.
Every other way stock leaves a warehouse is reported in its own column and is
never demand: transfers out, supplier returns, count losses, other issues. A
transfer between two warehouses counts as demand of the sending warehouse only
when ``transfers_as_demand`` is set (a branch stocked from a central warehouse);
a transfer inside one warehouse (both sides of one document at the same key)
nets to nothing: it moved no stock out of the warehouse.

Quantities are ``Decimal`` in the base unit; each column is positive for stock
that left (a shipment line of −5 adds 5 to ``shipments``). A day is the UTC
date of the movement's ``occurred_at``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from sync.model import MovementKind, StockKey, document_key

#: the kinds the demand read needs: outbound kinds, customer returns and the inbound side
#: of transfers (to net transfers inside one warehouse)
DEMAND_KINDS = frozenset(
    {
        MovementKind.SHIPMENT,
        MovementKind.CUSTOMER_RETURN,
        MovementKind.TRANSFER_OUT,
        MovementKind.TRANSFER_IN,
        MovementKind.SUPPLIER_RETURN,
        MovementKind.COUNT_LOSS,
        MovementKind.OTHER_OUT,
    }
)

#: kind → (column, sign): the column's amount is sign × qty
_COLUMN = {
    MovementKind.SHIPMENT: ("shipments", -1),
    MovementKind.CUSTOMER_RETURN: ("customer_returns", 1),
    MovementKind.SUPPLIER_RETURN: ("supplier_returns", -1),
    MovementKind.COUNT_LOSS: ("count_losses", -1),
    MovementKind.OTHER_OUT: ("other_out", -1),
}

_ZERO = Decimal(0)


class DemandLine(NamedTuple):
    """One active ledger line of a ``DEMAND_KINDS`` kind (``qty`` signed, base unit)."""

    key: str
    kind: str
    sku: str
    warehouse: str
    qty: Decimal
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Outflows:
    """What left one key in a window, by cause (base unit, positive = left)."""

    shipments: Decimal = _ZERO
    customer_returns: Decimal = _ZERO
    #: to another warehouse (transfers inside this warehouse netted away)
    transfers_out: Decimal = _ZERO
    supplier_returns: Decimal = _ZERO
    count_losses: Decimal = _ZERO
    other_out: Decimal = _ZERO

    def demand(self, transfers_as_demand: bool = False) -> Decimal:
        """shipments − customer returns (+ transfers out when so configured), never below 0:
        more returned than shipped in a window is no demand, not negative demand."""
        total = self.shipments - self.customer_returns
        if transfers_as_demand:
            total += self.transfers_out
        return max(_ZERO, total)


#: the columns of ``Outflows`` in report order
OUTFLOW_COLUMNS = tuple(f.name for f in fields(Outflows))


class _Amount(NamedTuple):
    stock_key: StockKey
    day: date
    column: str
    qty: Decimal


def _amounts(lines: Iterable[DemandLine]) -> Iterable[_Amount]:
    """Each line as a positive-when-leaving amount in its column; transfers netted per
    document and key, the net outflow dated by the document's outbound lines."""
    transfers: dict[tuple[StockKey, str], list[DemandLine]] = defaultdict(list)
    for line in lines:
        key = StockKey(line.sku, line.warehouse)
        if line.kind in (MovementKind.TRANSFER_OUT, MovementKind.TRANSFER_IN):
            transfers[key, document_key(line.key)].append(line)
        elif line.kind in _COLUMN:
            column, sign = _COLUMN[MovementKind(line.kind)]
            yield _Amount(key, line.occurred_at.date(), column, sign * line.qty)
    for (key, _doc), group in transfers.items():
        out = [x for x in group if x.qty < 0]
        left = -sum((x.qty for x in out), _ZERO)
        arrived = sum((x.qty for x in group if x.qty > 0), _ZERO)
        if left <= arrived:  # a transfer inside this warehouse (or a net arrival)
            continue
        share = (left - arrived) / left
        for x in out:
            yield _Amount(key, x.occurred_at.date(), "transfers_out", -x.qty * share)


def outflows(lines: Iterable[DemandLine]) -> dict[StockKey, Outflows]:
    """Σ per key and column over ``lines`` (a window's active lines)."""
    sums: dict[StockKey, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for a in _amounts(lines):
        sums[a.stock_key][a.column] += a.qty
    return {key: Outflows(**cols) for key, cols in sums.items()}


def daily_demand(
    lines: Iterable[DemandLine], *, transfers_as_demand: bool = False
) -> dict[StockKey, dict[date, Decimal]]:
    """Customer demand per key per day: shipments − customer returns (+ transfers out when
    configured). A day's figure may be negative (a return with no sale that day); the
    forecast floors each period at 0. Keys with lines but no demand map to ``{}``-like
    days of 0, so that a key with outflows of other kinds still has a (zero) series."""
    demand_columns = {"shipments": 1, "customer_returns": -1}
    if transfers_as_demand:
        demand_columns["transfers_out"] = 1
    days: dict[StockKey, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for a in _amounts(lines):
        sign = demand_columns.get(a.column, 0)
        days[a.stock_key][a.day] += sign * a.qty
    return {key: dict(series) for key, series in days.items()}


def as_floats(series: Mapping[date, Decimal]) -> dict[date, float]:
    """A demand series for the forecast: floats, each day floored at 0."""
    return {day: max(0.0, float(qty)) for day, qty in series.items()}

"""Stock cover (architecture §7): on hand, reserved, available, demand rate, cover, reorder.

``cover_rows`` is pure; ``stock_cover`` reads the ledger. The daily rate is the
customer demand (shipments − customer returns, ``sync.demand``; transfers out
only when ``forecast.transfers_as_demand``) over the last N days divided by N;
transfers out, supplier returns, count losses and other issues are shown in
their own columns and never count as demand (issue 20). Reserved
is the ERP's last snapshot plus the static ``push.reservations`` of the key;
available = on hand − reserved. Days of cover and the reorder suggestion use
the ``basis`` figure (``alerts.basis`` or ``--basis``): on hand, or available
(issue 15: stock that is all reserved covers no sales).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sync.alert_scope import figures
from sync.alerts import compared, threshold_of
from sync.config import AlertSettings, Basis
from sync.demand import DEMAND_KINDS, OUTFLOW_COLUMNS, Outflows, outflows
from sync.model import LevelValue, StockKey, plain
from sync.reservations import parse_key
from sync.state.store import StateStore

# The only rounding of quantities in the core, and on purpose: a daily rate and
# days of cover are quotients shown to a person (a division has no exact decimal
# form); on hand and demand stay exact, and the reorder suggestion rounds *up*
# to whole units so that it never suggests too little.
_RATE_EXP = Decimal("0.0001")
_COVER_EXP = Decimal("0.1")


#: the columns of ``CoverRow.as_dict`` (the CSV header of an empty report, with ``days``)
COVER_COLUMNS = (
    "pipeline",
    "sku",
    "warehouse",
    "on_hand",
    "reserved",
    "available",
    "basis",
    "demand",
    "daily_rate",
    "days_of_cover",
    *OUTFLOW_COLUMNS,
    "safety_stock",
    "reorder_qty",
)


@dataclass(frozen=True, slots=True)
class CoverRow:
    key: StockKey
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    #: the figure days of cover and the reorder suggestion use
    basis: Basis
    #: customer demand over the window (``Outflows.demand``)
    demand: Decimal
    daily_rate: Decimal
    #: None when there was no customer demand in the window (infinite cover)
    days_of_cover: Decimal | None
    safety_stock: Decimal
    reorder_qty: Decimal
    #: the window's outflows by cause
    outflows: Outflows = field(default_factory=Outflows)

    def as_dict(self, pipeline: str) -> dict[str, Any]:
        return {
            "pipeline": pipeline,
            "sku": self.key.sku,
            "warehouse": self.key.warehouse,
            "on_hand": plain(self.on_hand),
            "reserved": plain(self.reserved),
            "available": plain(self.available),
            "basis": self.basis,
            "demand": plain(self.demand),
            "daily_rate": str(self.daily_rate),  # a rate, to a fixed 4 decimals
            "days_of_cover": None if self.days_of_cover is None else str(self.days_of_cover),
            **{c: plain(getattr(self.outflows, c)) for c in OUTFLOW_COLUMNS},
            "safety_stock": plain(self.safety_stock),
            "reorder_qty": plain(self.reorder_qty),
        }


def cover_rows(
    levels: Mapping[StockKey, LevelValue],
    flows: Mapping[StockKey, Outflows],
    *,
    days: int,
    lead_time_days: Decimal,
    safety: Mapping[StockKey, Decimal],
    basis: Basis = "on_hand",
    transfers_as_demand: bool = False,
) -> list[CoverRow]:
    """One row per key with stock, reserved stock or outflows; sorted by key. Pure.

    With q the ``basis`` figure (on hand or available) and rate = customer demand
    / days: days of cover = q / rate (0 when q ≤ 0, None when there was no
    demand); reorder = max(0, rate × lead time + safety − q), rounded up to a
    whole unit.
    """
    rows = []
    none = LevelValue(Decimal(0), Decimal(0))
    for key in sorted(set(levels) | set(flows)):
        value = levels.get(key, none)
        qty = compared(value, basis)
        flow = flows.get(key, Outflows())
        out = flow.demand(transfers_as_demand)
        rate = (out / days).quantize(_RATE_EXP)
        cover = None if rate == 0 else (qty / rate).quantize(_COVER_EXP)
        if cover is not None and cover < 0:
            cover = Decimal(0)
        need = rate * lead_time_days + safety.get(key, Decimal(0)) - qty
        reorder = max(Decimal(0), need.to_integral_value(ROUND_CEILING))
        rows.append(
            CoverRow(
                key,
                value.real,
                value.reserved,
                value.available,
                basis,
                out,
                rate,
                cover,
                safety.get(key, Decimal(0)),
                reorder,
                flow,
            )
        )
    return rows


def stock_cover(
    store: StateStore,
    pipeline: str,
    settings: AlertSettings,
    *,
    days: int,
    now: datetime,
    static: Mapping[str, Decimal] | None = None,
    basis: Basis | None = None,
    transfers_as_demand: bool = False,
) -> list[CoverRow]:
    """The stock-cover report of one pipeline from its ledger and reserved stock.

    ``static``: the pipeline's ``push.reservations``; ``basis``: overrides ``settings.basis``.
    """
    static = static or {}
    on_hand = store.levels(pipeline)
    # a key reserved (in the ERP or the config) but never stocked has on hand 0
    reserved_only = set(store.reserved_units(pipeline)) | {parse_key(r) for r in static}
    on_hand |= {k: Decimal(0) for k in reserved_only - on_hand.keys()}
    levels = dict(figures(store, pipeline, on_hand.items(), static))
    lines = store.demand_lines(
        pipeline, now - timedelta(days=days), sorted(k.value for k in DEMAND_KINDS)
    )
    flows = outflows(lines)
    keys = set(levels) | set(flows)
    safety = {k: t for k in keys if (t := threshold_of(k, settings)) is not None}
    return cover_rows(
        levels,
        flows,
        days=days,
        lead_time_days=settings.lead_time_days,
        safety=safety,
        basis=basis or settings.basis,
        transfers_as_demand=transfers_as_demand,
    )

"""Stock cover (DESIGN §7): on hand, outbound rate, days of cover, suggested reorder quantity.

``cover_rows`` is pure; ``stock_cover`` reads the ledger. The outbound rate is
the sum of active outbound movements (shipments, supplier returns, transfers
out, count losses, other issues) over the last N days divided by N.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sync.alerts import threshold_of
from sync.config import AlertSettings
from sync.model import OUTBOUND_KINDS, StockKey
from sync.state.store import StateStore

# The only rounding of quantities in the core, and on purpose: a daily rate and
# days of cover are quotients shown to a person (a division has no exact decimal
# form); on hand and outbound stay exact, and the reorder suggestion rounds *up*
# to whole units so that it never suggests too little.
_RATE_EXP = Decimal("0.0001")
_COVER_EXP = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class CoverRow:
    key: StockKey
    on_hand: Decimal
    outbound: Decimal
    daily_rate: Decimal
    #: None when nothing went out in the window (infinite cover)
    days_of_cover: Decimal | None
    safety_stock: Decimal
    reorder_qty: Decimal

    def as_dict(self, pipeline: str) -> dict[str, Any]:
        return {
            "pipeline": pipeline,
            "sku": self.key.sku,
            "warehouse": self.key.warehouse,
            "on_hand": str(self.on_hand),
            "outbound": str(self.outbound),
            "daily_rate": str(self.daily_rate),
            "days_of_cover": None if self.days_of_cover is None else str(self.days_of_cover),
            "safety_stock": str(self.safety_stock),
            "reorder_qty": str(self.reorder_qty),
        }


def cover_rows(
    on_hand: Mapping[StockKey, Decimal],
    outbound: Mapping[StockKey, Decimal],
    *,
    days: int,
    lead_time_days: Decimal,
    safety: Mapping[StockKey, Decimal],
) -> list[CoverRow]:
    """One row per key with stock or outbound; sorted by key. Pure.

    reorder = max(0, rate × lead time + safety − on hand), rounded up to a whole unit.
    """
    rows = []
    for key in sorted(set(on_hand) | set(outbound)):
        qty = on_hand.get(key, Decimal(0))
        out = outbound.get(key, Decimal(0))
        rate = (out / days).quantize(_RATE_EXP)
        cover = None if rate == 0 else (qty / rate).quantize(_COVER_EXP)
        if cover is not None and cover < 0:
            cover = Decimal(0)
        need = rate * lead_time_days + safety.get(key, Decimal(0)) - qty
        reorder = max(Decimal(0), need.to_integral_value(ROUND_CEILING))
        rows.append(CoverRow(key, qty, out, rate, cover, safety.get(key, Decimal(0)), reorder))
    return rows


def stock_cover(
    store: StateStore, pipeline: str, settings: AlertSettings, *, days: int, now: datetime
) -> list[CoverRow]:
    """The stock-cover report of one pipeline from its ledger."""
    levels = store.levels(pipeline)
    outbound = store.outbound_totals(
        pipeline, now - timedelta(days=days), sorted(k.value for k in OUTBOUND_KINDS)
    )
    keys = set(levels) | set(outbound)
    safety = {k: t for k in keys if (t := threshold_of(k, settings)) is not None}
    return cover_rows(
        levels, outbound, days=days, lead_time_days=settings.lead_time_days, safety=safety
    )

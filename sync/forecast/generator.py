"""Seeded demand series with known structure, for the backtest's benchmark and the tests.

Not data files: the same seed gives the same series on every machine. Families
(daily values, base unit, Poisson counts around a known mean):

- ``seasonal``: weekly profile (±30–60 %), yearly wave (±20–40 %), linear trend
  (−20 % to +40 % a year) around a level of 5–50 a day;
- ``intermittent``: demand on 5–30 % of days, sizes 1 + Poisson(1–5);
- ``flat``: a constant mean of 1–30 a day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from sync.forecast.engine import Series
from sync.forecast.extra import require

Family = Literal["seasonal", "intermittent", "flat"]
FAMILIES: tuple[Family, ...] = ("seasonal", "intermittent", "flat")


def generate(
    family: Family, count: int, days: int, *, seed: int = 20, end: date = date(2026, 1, 1)
) -> list[Series]:
    """``count`` daily series of ``days`` days ending the day before ``end``; keys
    ``{FAMILY}-{i}@WH-GEN``."""
    np = require("numpy")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    t = np.arange(days, dtype=float)
    start = end - timedelta(days=days)
    out = []
    for i in range(count):
        if family == "seasonal":
            weekly = 1 + rng.uniform(0.3, 0.6) * np.sin(2 * np.pi * (t + rng.integers(7)) / 7)
            yearly = 1 + rng.uniform(0.2, 0.4) * np.sin(
                2 * np.pi * (t + rng.integers(365)) / 365.25
            )
            trend = 1 + rng.uniform(-0.2, 0.4) * t / 365.0
            values = rng.poisson(rng.uniform(5, 50) * weekly * yearly * trend)
        elif family == "intermittent":
            occurs = rng.random(days) < rng.uniform(0.05, 0.3)
            values = occurs * (1 + rng.poisson(rng.uniform(1, 5), days))
        else:
            values = rng.poisson(rng.uniform(1, 30), days)
        sku = f"{family.upper()}-{i}"
        # a float array, not a list: 10,000 series of two years as lists of floats take 0.25 GB
        out.append(Series(f"{sku}@WH-GEN", sku, "WH-GEN", start, values.astype(float)))
    return out

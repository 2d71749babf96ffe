"""The ``forecast`` section of a pipeline: demand definition, forecast and reorder plan
(issue 20; architecture §7.3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from sync.settings import StrictModel

Period = Literal["day", "week"]


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"not a valid cron expression ({exc})") from None
    return value


class ForecastSettings(StrictModel):
    transfers_as_demand: bool = Field(
        False,
        description="count transfers to another warehouse as customer demand of the sending "
        "warehouse (a branch supplied by a central warehouse); transfers inside one warehouse "
        "never count",
    )
    period: Period = Field("day", description="forecast per day or per ISO week")
    horizon_days: int = Field(56, ge=1, le=730, description="days forecast ahead (1 to 730)")
    history_days: int = Field(
        730, ge=7, le=3650, description="days of history the forecast reads (7 to 3650)"
    )
    lead_time_days: int = Field(
        7, ge=0, le=365, description="supplier lead time for the reorder plan (0 to 365 days)"
    )
    review_days: int = Field(
        7,
        ge=1,
        le=365,
        description="days between orders: an order covers lead time + review (1 to 365 days)",
    )
    service_level: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        allow_inf_nan=False,
        description="probability of no stock-out over the lead time (0.5 < p < 1)",
    )
    interval_pct: int = Field(
        90, ge=50, le=99, description="coverage of the prediction interval in % (50 to 99)"
    )
    cv_windows: int = Field(
        2, ge=1, le=10, description="rolling-origin windows that choose the model (1 to 10)"
    )
    flat_rate_days: int = Field(
        30, ge=1, le=3650, description="window of the flat-rate method the backtest compares"
    )
    jobs: int = Field(
        1,
        ge=1,
        le=64,
        description="processes the forecast runs in (the nightly job; `forecast --jobs` "
        "overrides): statsforecast splits the series among them",
    )
    nightly_cron: str | None = Field(
        None,
        description="cron of the daemon job that computes and stores the reorder plan and "
        "fires stockout_projected alerts; none: no job",
    )

    _cron = field_validator("nightly_cron")(_check_cron)

    @model_validator(mode="after")
    def _fits_history(self) -> ForecastSettings:
        if self.horizon_days > self.history_days:
            raise ValueError("horizon_days must not exceed history_days")
        return self

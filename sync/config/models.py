"""The config's typed, frozen models: state, log, metrics, schedule, pull, push, reconcile,
alerts and pipelines, each number bounded (``sync.settings``).

Connector sections are validated by the connector's own settings model, chosen by
``type:`` from the registry (``settings_model``), so plug-ins get the same precise
errors as built-ins. Loading a file into these models is ``sync.config.load``.
"""

from __future__ import annotations

import functools
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
)

import connectors
from sync.config.forecast import ForecastSettings
from sync.errors import ConfigError, ConfigProblem
from sync.model import exact_units, parse_stock_key
from sync.settings import (
    DAY_S,
    MAX_ATTEMPTS,
    MAX_QUANTITY,
    MAX_TIMEOUT_S,
    MAX_WAIT_S,
    SecretHttpUrl,
    StrictModel,
)

DEFAULT_PATH = "stocksync.yaml"
ENV_CONFIG = "STOCKSYNC_CONFIG"
ENV_STATE_URL = "STOCKSYNC_STATE_URL"
DEFAULT_STATE_URL = "sqlite:///stocksync.db"

Policy = Literal["erp_wins", "report_only"]
#: the stock figure alerts and stock cover use (issue 15)
Basis = Literal["on_hand", "available"]
#: the /healthz freshness limit when ``schedule.max_freshness_s`` is not set
DEFAULT_MAX_FRESHNESS_S = 3600.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"not a valid cron expression ({exc})") from None
    return value


class StateSettings(StrictModel):
    url: str = Field(
        DEFAULT_STATE_URL,
        description="SQLAlchemy URL of the state database: sqlite:///path.db (default), "
        "postgresql://user@host/db (production, HA) or mysql://user@host/db. "
        f"Overridden by the environment variable {ENV_STATE_URL}.",
    )


class LogSettings(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: JSON lines when stdout is not a terminal, console otherwise"
    )


class MetricsSettings(StrictModel):
    host: str = Field("127.0.0.1", description="address for /healthz and /metrics")
    port: int = Field(9108, ge=0, le=65535)


class ReplicaSettings(StrictModel):
    """How replicas sharing a server state database split the pipelines (sync.service.leases)."""

    heartbeat_s: float = Field(
        5.0,
        ge=0.1,
        le=300,
        allow_inf_nan=False,
        description="seconds between a replica's lease renewals (0.1 s to 5 min)",
    )
    lease_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="a replica that stops renewing loses its pipelines to the others within "
        "this many seconds (at least 3 heartbeats, at most 1 hour)",
    )

    @field_validator("lease_timeout_s")
    @classmethod
    def _three_heartbeats(cls, value: float, info: ValidationInfo) -> float:
        heartbeat_s = info.data.get("heartbeat_s")
        if heartbeat_s is not None and value < 3 * heartbeat_s:
            raise ValueError(
                f"must be at least 3 × replicas.heartbeat_s ({3 * heartbeat_s:g}): a lease "
                "must survive one late heartbeat"
            )
        return value


class ScheduleSettings(StrictModel):
    interval_s: float = Field(
        60.0,
        ge=1,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="seconds between pull → push cycles (1 s to 7 days)",
    )
    rescan_cron: str = Field(
        "30 1 * * *", description="cron for the window rescan that finds deleted ERP documents"
    )
    reconcile_cron: str = Field("0 2 * * *", description="cron for the three-way reconcile")
    misfire_grace_s: float = Field(
        300.0,
        ge=1,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="a job that could not start on time still runs this late (1 s to 7 days)",
    )

    max_freshness_s: float | None = Field(
        None,
        gt=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="/healthz fails when the oldest ERP change the CRM does not reflect yet "
        "is older than this (seconds, more than interval_s, at most 7 days); default: "
        "1 hour, or 3 × interval_s when that is longer",
    )

    _cron = field_validator("rescan_cron", "reconcile_cron")(_check_cron)

    @field_validator("max_freshness_s")
    @classmethod
    def _freshness_above_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        # an idle healthy pipeline reads up to one interval plus a cycle (sync.freshness)
        interval_s = info.data.get("interval_s")
        if value is not None and interval_s is not None and value <= interval_s:
            raise ValueError(
                f"must be more than schedule.interval_s ({interval_s:g}): a healthy "
                "pipeline's freshness reaches one interval"
            )
        return value

    @property
    def freshness_limit_s(self) -> float:
        """``max_freshness_s``, or its default: 1 hour, or 3 intervals when that is longer."""
        if self.max_freshness_s is not None:
            return self.max_freshness_s
        return max(DEFAULT_MAX_FRESHNESS_S, 3 * self.interval_s)


class PullSettings(StrictModel):
    page_size: int = Field(
        1000,
        ge=1,
        le=10000,
        description="records per page, each page one transaction; also the rows asked of the "
        "ERP per request (K/3 Cloud: the Limit of ExecuteBillQuery)",
    )
    overlap_s: float = Field(
        120.0,
        ge=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="re-read this many seconds before the cursor (late commits; at most 7 days)",
    )
    history_since: date | None = Field(
        None,
        description="first run starts at midnight of this day in the ERP's time zone "
        "(default: the ERP's whole history)",
    )
    rescan_days: int = Field(
        35, ge=1, le=366, description="window of the deletion rescan, in days (1 to 366)"
    )


def _micro_units(value: Decimal) -> Decimal:
    """A stock quantity the ledger can hold exactly: at most 6 decimal places, never rounded."""
    if exact_units(value) is None:
        raise ValueError("at most 6 decimal places (the ledger keeps quantities in micro-units)")
    return value


#: a quantity in the base unit that the ledger holds exactly
Quantity = Annotated[
    Decimal, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY), AfterValidator(_micro_units)
]


def _reservation_key(value: str) -> str:
    """A static reservation names one stock key: ``SKU@WAREHOUSE`` (issue 15)."""
    parse_stock_key(value)
    return value


ReservationKey = Annotated[str, AfterValidator(_reservation_key)]


class PushSettings(StrictModel):
    batch_size: int = Field(
        200,
        ge=1,
        le=10000,
        description="outbox rows read per step of a push (a CRM that writes in batches gets "
        "at least its own batch size: Salesforce 200)",
    )
    max_attempts: int = Field(
        8, ge=1, le=MAX_ATTEMPTS, description="a row is dead after this many failures (≤ 1000)"
    )
    retry_initial_s: float = Field(
        30.0,
        gt=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="first retry delay of a failed row, seconds (at most 7 days)",
    )
    retry_max_s: float = Field(
        3600.0,
        gt=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="longest retry delay of a failed row, seconds (at most 7 days)",
    )
    mirror_movements: bool = Field(
        False, description="also write each movement to the CRM's movement object"
    )
    log_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="days each push outcome stays in the push log for `stocksync explain` "
        "(1 to 3650)",
    )
    reservations: dict[ReservationKey, Annotated[Quantity, Field(ge=0)]] = Field(
        default_factory=dict,
        description='static reserved quantity per "SKU@WAREHOUSE", added to what the ERP '
        "reserves: available = on hand − reserved (a bare SKU is refused: name the warehouse; "
        "0 to 10^12 in the base unit)",
    )


class ReconcileSettings(StrictModel):
    erp_ledger_drift: Policy = "erp_wins"
    crm_modified: Policy = "erp_wins"
    missing_in_crm: Policy = "erp_wins"
    orphan_in_crm: Literal["report_only", "zero"] = "report_only"
    #: two or more live CRM records for one key: keep the bound one, invalidate the others
    duplicate_in_crm: Literal["report_only", "invalidate_extras"] = "report_only"
    #: the ERP's reserved stock ≠ the figure stored: store the ERP's and push the key
    reserved_drift: Policy = "erp_wins"
    #: the CRM's blocked figure edited: push the key again
    crm_reserved_modified: Policy = "erp_wins"
    #: the CRM's available figure edited: push the key again
    crm_available_modified: Policy = "erp_wins"


class WebhookSettings(StrictModel):
    url: SecretHttpUrl
    timeout_s: float = Field(
        10.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="HTTP timeout per delivery, seconds (at most 1 hour)",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        le=MAX_ATTEMPTS,
        description="deliveries tried, one per push with push.retry_* backoff, before the "
        "alert's outbox row is dead (≤ 1000)",
    )


class AlertSettings(StrictModel):
    default_threshold: Quantity | None = Field(
        None,
        description="safety stock for every SKU without its own threshold (|q| ≤ 10^12)",
    )
    thresholds: dict[str, Quantity] = Field(
        default_factory=dict,
        description='safety stock per "SKU" or "SKU@WAREHOUSE" (|q| ≤ 10^12)',
    )
    from_crm: bool = Field(False, description="read thresholds from the CRM's safety_stock field")
    webhook: WebhookSettings | None = None
    lead_time_days: Decimal = Field(
        Decimal(7), ge=0, le=3650, description="for reorder suggestions (0 to 3650 days)"
    )
    cover_days: int = Field(
        30, ge=1, le=3650, description="customer-demand window for stock cover (1 to 3650 days)"
    )
    basis: Basis = Field(
        "on_hand",
        description="what alerts compare with the threshold and stock cover divides: on_hand, "
        "or available = on hand − reserved (ERP reserved + push.reservations), since stock "
        "that is all reserved is out of stock for sales",
    )


class PipelineBase(StrictModel):
    name: str = Field(description="lowercase identifier, used in state rows, logs and metrics")
    enabled: bool = True
    precision: int = Field(
        6,
        ge=0,
        le=6,
        description=(
            "decimal places the ledger keeps (the store keeps micro-units, 6 dp); a line with"
            " more is quarantined as a record_error, never rounded"
        ),
    )
    schedule: ScheduleSettings = ScheduleSettings()
    pull: PullSettings = PullSettings()
    push: PushSettings = PushSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    alerts: AlertSettings = AlertSettings()
    forecast: ForecastSettings = ForecastSettings()

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1-48 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return value

    #: the connector settings models (narrowed by ``settings_model()``)
    erp: Any = None
    crm: Any = None


class SettingsBase(StrictModel):
    version: Literal[1] = 1
    state: StateSettings = StateSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings | None = MetricsSettings()
    shutdown_grace_s: float = Field(
        30.0,
        gt=0,
        le=DAY_S,
        allow_inf_nan=False,
        description="seconds running jobs get to finish on SIGTERM (at most 1 day)",
    )
    workers: int = Field(
        16,
        ge=1,
        le=128,
        description="jobs that may run at once in this process (scheduler threads, 1 to 128); "
        "the state database's connection pool is sized from it",
    )
    replicas: ReplicaSettings = ReplicaSettings()
    pipelines: list[PipelineBase] = Field(default_factory=list)

    def pipeline(self, name: str) -> PipelineBase:
        for p in self.pipelines:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.pipelines)
        raise ConfigError(
            [ConfigProblem("pipelines", f"no pipeline named {name!r}; known: {known}")]
        )


def _connector_union(role: connectors.Role) -> Any:
    models = []
    for spec in connectors.available(role).values():
        try:
            models.append(spec.settings_model())
        except ImportError:  # a connector whose optional dependency is missing
            continue
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007


@functools.cache
def settings_model() -> type[SettingsBase]:
    """The full config model, with connector sections from the registry."""
    pipeline = create_model(
        "PipelineSettings",
        __base__=PipelineBase,
        erp=(_connector_union("erp"), ...),
        crm=(_connector_union("crm"), ...),
    )
    model: type[SettingsBase] = create_model(
        "Settings",
        __base__=SettingsBase,
        pipelines=(list[pipeline], Field(min_length=1)),
    )
    return model

"""YAML → typed, frozen configuration, with every problem reported at once.

Each problem names its YAML path (``pipelines[0].crm.app_secret``) and line.
``${VAR}`` and ``${VAR:-default}`` are interpolated in scalar values (never in
keys); a missing variable is a problem naming it. Connector sections are
validated by the connector's own settings model, chosen by ``type:`` from the
registry, so plug-ins get the same precise errors as built-ins.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

import connectors
from sync.errors import ConfigError, ConfigProblem
from sync.model import exact_units, parse_stock_key
from sync.settings import (
    DAY_S,
    MAX_ATTEMPTS,
    MAX_QUANTITY,
    MAX_TIMEOUT_S,
    MAX_WAIT_S,
    StrictModel,
    mask,
    register_url_password,
)

DEFAULT_PATH = "stocksync.yaml"
ENV_CONFIG = "STOCKSYNC_CONFIG"
ENV_STATE_URL = "STOCKSYNC_STATE_URL"
DEFAULT_STATE_URL = "sqlite:///stocksync.db"

Policy = Literal["erp_wins", "report_only"]
#: the stock figure alerts and stock cover use (issue 15)
Basis = Literal["on_hand", "available"]
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

    _cron = field_validator("rescan_cron", "reconcile_cron")(_check_cron)


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
    batch_size: int = Field(200, ge=1, le=10000)
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
    url: str
    timeout_s: float = Field(
        10.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="HTTP timeout per delivery, seconds (at most 1 hour)",
    )
    max_attempts: int = Field(5, ge=1, le=MAX_ATTEMPTS, description="deliveries tried (≤ 1000)")


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
        30, ge=1, le=3650, description="outbound rate window for stock cover (1 to 3650 days)"
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
    pipelines: list[PipelineBase] = Field(default_factory=list)

    def pipeline(self, name: str) -> PipelineBase:
        for p in self.pipelines:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.pipelines)
        raise ConfigError(
            [ConfigProblem("pipelines", f"no pipeline named {name!r}; known: {known}")]
        )

    @model_validator(mode="after")
    def _unique_pipeline_names(self) -> SettingsBase:
        names = [p.name for p in self.pipelines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pipeline names must be unique; repeated: {', '.join(dupes)}")
        return self


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


# --------------------------------------------------------------------------- YAML

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    if loc and loc[-1] == "[key]":  # pydantic's mark of a refused mapping key: the key is the path
        loc = loc[:-1]
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class _Lines:
    """YAML path → line number, from the composed node tree."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[(*path, key.value)] = key.start_mark.line + 1
                self._walk(value, (*path, key.value))
                self.lines[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def find(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _interpolate(
    value: Any,
    path: tuple[Any, ...],
    env: Mapping[str, str],
    problems: list[tuple[tuple[Any, ...], str]],
) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append((path, f"environment variable {name} is not set"))
            return ""

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), env, problems) for i, v in enumerate(value)]
    return value


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-member tags (``erp.k3cloud.app_id`` → ``erp.app_id``)."""
    tags = set(connectors.available())
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] in ("erp", "crm") and part in tags:
            continue
        out.append(part)
    return tuple(out)


def _message(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if (
        kind == "literal_error"
        and len(loc) >= 2
        and loc[-1] == "type"
        and loc[-2] in ("erp", "crm")
    ):
        known = ", ".join(connectors.available(loc[-2]))
        return f"unknown {loc[-2]} connector {error.get('input')!r}; known: {known}"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_invalid":
        role: connectors.Role | None = next(
            (part for part in reversed(loc[-2:]) if part in ("erp", "crm")), None
        )
        known = ", ".join(connectors.available(role))
        tag = error.get("ctx", {}).get("tag")
        return f"unknown {role or 'connector'} connector {tag!r}; known: {known}"
    if kind == "union_tag_not_found":
        return "required key 'type' is missing (names the connector)"
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[0].lower() + msg[1:] if msg else msg


def parse(
    text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> SettingsBase:
    """Validate a YAML document; raise ConfigError with every problem found."""
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem("(yaml)", f"not valid YAML: {problem}", line)], source=source
        ) from None
    lines = _Lines(node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem("(top level)", "must be a mapping of keys", 1)], source=source
        )
    env_problems: list[tuple[tuple[Any, ...], str]] = []
    data = _interpolate(data, (), env, env_problems)
    if env.get(ENV_STATE_URL):
        data.setdefault("state", {})
        if isinstance(data["state"], dict):
            data["state"]["url"] = env[ENV_STATE_URL]
    state = data.get("state")
    if isinstance(state, dict) and isinstance(state.get("url"), str):
        register_url_password(state["url"])
    problems = [ConfigProblem(_format_path(p), m, lines.find(p)) for p, m in env_problems]
    #: a value left empty by an unset variable says so once, not again as "too short"
    unset = {p for p, _ in env_problems}
    try:
        settings = settings_model().model_validate(data)
    except ValidationError as exc:
        # inputs are only used for connector type names: values may be secrets
        for error in exc.errors(include_url=False):
            loc = _strip_tags(tuple(error["loc"]))
            if error["type"] == "union_tag_invalid":
                loc = (*loc, "type")
            if loc in unset:
                continue
            problems.append(
                ConfigProblem(_format_path(loc), mask(_message(error, loc)), lines.find(loc))
            )
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems, source=source) from None
    if problems:
        raise ConfigError(problems, source=source)
    return settings


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """-c PATH, else $STOCKSYNC_CONFIG, else ./stocksync.yaml."""
    return Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_PATH)


def load(path: str | os.PathLike[str] | None = None) -> SettingsBase:
    """Read and validate a config file."""
    resolved = resolve_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem("(file)", f"no such file: {resolved}")], source=str(resolved)
        ) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("(file)", f"cannot read: {exc}")], source=str(resolved)
        ) from None
    return parse(text, source=str(resolved))


def state_url(path: str | os.PathLike[str] | None = None) -> str:
    """The state DB URL for commands that need only the state: env first, then the config."""
    if os.environ.get(ENV_STATE_URL):
        return os.environ[ENV_STATE_URL]
    return load(path).state.url


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editor completion."""
    schema: dict[str, Any] = settings_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stocksync configuration"
    return schema

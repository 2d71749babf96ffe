"""The configuration: typed models (``models``), the YAML file loader (``load``) and its
UTF-8, duplicate-key and line-tracking reader (``yaml_doc``).

``from sync import config as cfg`` then ``cfg.load(path)`` is how the rest of stocksync
reads it.
"""

from sync.config.forecast import ForecastSettings
from sync.config.load import (
    json_schema,
    load,
    parse,
    resolve_path,
    state_url,
)
from sync.config.models import (
    DEFAULT_MAX_FRESHNESS_S,
    DEFAULT_PATH,
    DEFAULT_STATE_URL,
    ENV_CONFIG,
    ENV_STATE_URL,
    AlertSettings,
    Basis,
    LogSettings,
    MetricsSettings,
    PipelineBase,
    Policy,
    PullSettings,
    PushSettings,
    Quantity,
    ReconcileSettings,
    ReplicaSettings,
    ReservationKey,
    ScheduleSettings,
    SettingsBase,
    StateSettings,
    WebhookSettings,
    settings_model,
)

__all__ = [
    "DEFAULT_MAX_FRESHNESS_S",
    "DEFAULT_PATH",
    "DEFAULT_STATE_URL",
    "ENV_CONFIG",
    "ENV_STATE_URL",
    "AlertSettings",
    "Basis",
    "ForecastSettings",
    "LogSettings",
    "MetricsSettings",
    "PipelineBase",
    "Policy",
    "PullSettings",
    "PushSettings",
    "Quantity",
    "ReconcileSettings",
    "ReplicaSettings",
    "ReservationKey",
    "ScheduleSettings",
    "SettingsBase",
    "StateSettings",
    "WebhookSettings",
    "json_schema",
    "load",
    "parse",
    "resolve_path",
    "settings_model",
    "state_url",
]

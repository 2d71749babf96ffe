"""YAML file → ``Settings``, with every problem reported at once.

Each problem names its YAML path (``pipelines[0].crm.app_secret``) and line.
``${VAR}`` and ``${VAR:-default}`` are interpolated in scalar values (never in
keys); a missing variable is a problem naming it. The file must be UTF-8 and no
mapping may repeat a key (``yaml_doc``); the state URL must name a supported
backend, wherever it comes from (``state.url`` or ``STOCKSYNC_STATE_URL``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

import connectors
from sync.config.models import (
    DEFAULT_PATH,
    ENV_CONFIG,
    ENV_STATE_URL,
    SettingsBase,
    settings_model,
)
from sync.config.yaml_doc import Lines, format_path, load_yaml, read_text
from sync.errors import ConfigError, ConfigProblem
from sync.settings import (
    mask,
    register_url_password,
)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


def _state_url_problems(
    data: dict[str, Any], env: Mapping[str, str], lines: Lines
) -> list[ConfigProblem]:
    """The state URL: STOCKSYNC_STATE_URL overrides ``state.url``; an unusable one is a
    problem naming where it came from (the variable, or the path and line)."""
    from sync.state.engine import state_url_problem

    if env.get(ENV_STATE_URL):
        data.setdefault("state", {})
        if isinstance(data["state"], dict):
            data["state"]["url"] = env[ENV_STATE_URL]
        register_url_password(env[ENV_STATE_URL])
        problem = state_url_problem(env[ENV_STATE_URL])
        return [ConfigProblem(ENV_STATE_URL, problem)] if problem else []
    state = data.get("state")
    if not (isinstance(state, dict) and isinstance(state.get("url"), str)):
        return []
    register_url_password(state["url"])
    problem = state_url_problem(state["url"])
    return [ConfigProblem("state.url", problem, lines.find(("state", "url")))] if problem else []


def _repeated_names(data: dict[str, Any], lines: Lines) -> list[ConfigProblem]:
    """A pipeline name used twice: a problem at the second ``name:``, naming the first."""
    pipelines = data.get("pipelines")
    if not isinstance(pipelines, list):
        return []
    first: dict[str, int] = {}
    problems = []
    for i, p in enumerate(pipelines):
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            j = first[name]
            problems.append(
                ConfigProblem(
                    f"pipelines[{i}].name",
                    f"pipeline name {name!r} is already used by pipelines[{j}] "
                    f"(line {lines.find(('pipelines', j, 'name'))}); names must be unique",
                    lines.find(("pipelines", i, "name")),
                )
            )
        else:
            first[name] = i
    return problems


#: sections commands that only read the state never need: they hold the connector secrets
_SECRET_SECTIONS = ("erp", "crm")


def _without_connectors(data: dict[str, Any]) -> None:
    """Drop each pipeline's connector sections and alert webhook (``with_connectors=False``)."""
    for p in data.get("pipelines") or []:
        if not isinstance(p, dict):
            continue
        for section in _SECRET_SECTIONS:
            p.pop(section, None)
        alerts = p.get("alerts")
        if isinstance(alerts, dict):
            alerts.pop("webhook", None)


def parse(
    text: str,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    with_connectors: bool = True,
) -> SettingsBase:
    """Validate a YAML document; raise ConfigError with every problem found.

    ``with_connectors=False`` (commands that only read the state: status, report…) leaves out
    each pipeline's ``erp:``/``crm:`` sections and alert webhook, unread and unvalidated:
    their ``${VAR}`` secrets need not be set. Those fields are then None.
    """
    env = os.environ if env is None else env
    doc = load_yaml(text, source=source)
    data, lines = doc.data, doc.lines
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem("(top level)", "must be a mapping of keys", 1)], source=source
        )
    if not with_connectors:
        _without_connectors(data)
    env_problems: list[tuple[tuple[Any, ...], str]] = []
    data = _interpolate(data, (), env, env_problems)
    problems = doc.problems + [
        ConfigProblem(format_path(p), m, lines.find(p)) for p, m in env_problems
    ]
    unset = {p.path for p in problems}  # an unset variable's "" is no second problem
    problems += [p for p in _state_url_problems(data, env, lines) if p.path not in unset]
    problems += _repeated_names(data, lines)
    model = settings_model() if with_connectors else SettingsBase
    try:
        settings = model.model_validate(data)
    except ValidationError as exc:
        problems += [p for p in _validation_problems(exc, lines) if p.path not in unset]
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems, source=source)
    return settings


def _validation_problems(exc: ValidationError, lines: Lines) -> list[ConfigProblem]:
    problems = []
    # inputs are only used for connector type names: values may be secrets
    for error in exc.errors(include_url=False):
        loc = _strip_tags(tuple(error["loc"]))
        if error["type"] == "union_tag_invalid":
            loc = (*loc, "type")
        problems.append(
            ConfigProblem(format_path(loc), mask(_message(error, loc)), lines.find(loc))
        )
    return problems


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """-c PATH, else $STOCKSYNC_CONFIG, else ./stocksync.yaml."""
    return Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_PATH)


def load(
    path: str | os.PathLike[str] | None = None, *, with_connectors: bool = True
) -> SettingsBase:
    """Read and validate a config file (UTF-8); ``with_connectors``: see ``parse()``."""
    resolved = resolve_path(path)
    return parse(read_text(resolved), source=str(resolved), with_connectors=with_connectors)


def state_url(path: str | os.PathLike[str] | None = None) -> str:
    """The state DB URL for commands that need only the state: env first, then the config.

    The config is read without its connector sections, so their secrets need not be set.
    """
    url = os.environ.get(ENV_STATE_URL)
    if not url:
        return load(path, with_connectors=False).state.url
    register_url_password(url)
    from sync.state.engine import state_url_problem

    problem = state_url_problem(url)
    if problem:
        raise ConfigError([ConfigProblem(ENV_STATE_URL, problem)])
    return url


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editor completion."""
    schema: dict[str, Any] = settings_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stocksync configuration"
    return schema

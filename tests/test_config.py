"""Config validation: every problem at once, each with its YAML path, line and a clear message."""

from __future__ import annotations

import textwrap

import pytest

from sync.config import parse
from sync.errors import ConfigError

BASE = """\
pipelines:
  - name: main
    erp: {type: memory}
    crm: {type: memory-crm}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str, int | None]]:
    with pytest.raises(ConfigError) as info:
        parse(textwrap.dedent(text), env=env or {})
    return [(p.path, p.message, p.line) for p in info.value.problems]


INVALID = [
    # (yaml, expected path, expected message)
    ("pipelines: []\n", "pipelines", "list should have at least 1 item after validation, not 0"),
    ("{}\n", "pipelines", "required key is missing"),
    ("- a\n- b\n", "(top level)", "must be a mapping of keys"),
    (
        "pipelines: [\n",
        "(yaml)",
        "not valid YAML: expected the node content, but found '<stream end>'",
    ),
    ("version: 2\n" + BASE, "version", "input should be 1"),
    ("colour: blue\n" + BASE, "colour", "unknown key"),
    ("state: {url: 5}\n" + BASE, "state.url", "input should be a valid string"),
    ("state: {uri: x}\n" + BASE, "state.uri", "unknown key"),
    (
        "log: {level: loud}\n" + BASE,
        "log.level",
        "input should be 'debug', 'info', 'warning' or 'error'",
    ),
    ("log: {format: xml}\n" + BASE, "log.format", "input should be 'auto', 'json' or 'console'"),
    (
        "metrics: {port: 70000}\n" + BASE,
        "metrics.port",
        "input should be less than or equal to 65535",
    ),
    ("shutdown_grace_s: 0\n" + BASE, "shutdown_grace_s", "input should be greater than 0"),
    (
        "pipelines:\n  - erp: {type: memory}\n    crm: {type: memory-crm}\n",
        "pipelines[0].name",
        "required key is missing",
    ),
    (
        "pipelines:\n  - name: Main!\n    erp: {type: memory}\n    crm: {type: memory-crm}\n",
        "pipelines[0].name",
        "must be 1-48 lowercase letters, digits, '-' or '_', starting with a letter or digit",
    ),
    (
        "pipelines:\n  - name: a\n    crm: {type: memory-crm}\n",
        "pipelines[0].erp",
        "required key is missing",
    ),
    (
        "pipelines:\n  - name: a\n    erp: {type: sap}\n    crm: {type: memory-crm}\n",
        "pipelines[0].erp.type",
        "unknown erp connector 'sap'; known: ",
    ),
    (
        "pipelines:\n  - name: a\n    erp: {type: memory, colour: red}\n"
        "    crm: {type: memory-crm}\n",
        "pipelines[0].erp.colour",
        "unknown key",
    ),
    (
        BASE + "    schedule: {interval_s: 0}\n",
        "pipelines[0].schedule.interval_s",
        "input should be greater than or equal to 1",
    ),
    (
        BASE + "    schedule: {interval_s: 120, max_freshness_s: 120}\n",
        "pipelines[0].schedule.max_freshness_s",
        "must be more than schedule.interval_s (120): a healthy pipeline's freshness "
        "reaches one interval",
    ),
    (
        BASE + "    schedule: {max_freshness_s: 30}\n",
        "pipelines[0].schedule.max_freshness_s",
        "must be more than schedule.interval_s (60): a healthy pipeline's freshness "
        "reaches one interval",
    ),
    (
        BASE + "    schedule: {reconcile_cron: 'every night'}\n",
        "pipelines[0].schedule.reconcile_cron",
        "not a valid cron expression (Wrong number of fields; got 2, expected 5)",
    ),
    (
        BASE + "    schedule: {rescan_cron: '99 * * * *'}\n",
        "pipelines[0].schedule.rescan_cron",
        "not a valid cron expression (Error validating expression '99': the last value (99) is "
        "higher than the maximum value (59))",
    ),
    (
        BASE + "    pull: {page_size: 0}\n",
        "pipelines[0].pull.page_size",
        "input should be greater than or equal to 1",
    ),
    (
        BASE + "    pull: {history_since: yesterday}\n",
        "pipelines[0].pull.history_since",
        "input should be a valid date or datetime, input is too short",
    ),
    (
        BASE + "    push: {max_attempts: 0}\n",
        "pipelines[0].push.max_attempts",
        "input should be greater than or equal to 1",
    ),
    (
        BASE + "    push: {reservations: {A: lots}}\n",
        "pipelines[0].push.reservations.A",
        "input should be a valid decimal",
    ),
    (
        BASE + "    reconcile: {crm_modified: crm_wins}\n",
        "pipelines[0].reconcile.crm_modified",
        "input should be 'erp_wins' or 'report_only'",
    ),
    (
        BASE + "    alerts: {webhook: {timeout_s: 3}}\n",
        "pipelines[0].alerts.webhook.url",
        "required key is missing",
    ),
    (
        "pipelines:\n  - name: a\n    crm: {type: memory-crm}\n"
        "    erp: {type: k3cloud, server_url: 'http://h/k3cloud/', acct_id: a, username: u,\n"
        "          app_id: i, app_secret: ssssssss, page_size: 2000}\n",
        "pipelines[0].erp",
        "erp.page_size is no longer read: set pull.page_size (rows per page, one "
        "transaction each; also the Limit of each ExecuteBillQuery, at most 10000)",
    ),
    (
        BASE + "    precision: 9\n",
        "pipelines[0].precision",
        "input should be less than or equal to 6",
    ),
    (
        BASE + "  - name: main\n    erp: {type: memory}\n    crm: {type: memory-crm}\n",
        "pipelines[1].name",
        "pipeline name 'main' is already used by pipelines[0] (line 2); names must be unique",
    ),
    (
        "state: {url: '${STATE_DB}'}\n" + BASE,
        "state.url",
        "environment variable STATE_DB is not set",
    ),
]


@pytest.mark.parametrize(("text", "path", "message"), INVALID)
def test_invalid_config_names_path_and_message(text: str, path: str, message: str) -> None:
    found = problems(text)
    assert any(
        p == path and (m == message or (message.endswith(": ") and m.startswith(message)))
        for p, m, _ in found
    ), found


def test_at_least_twenty_invalid_cases() -> None:
    assert len(INVALID) >= 20


def test_every_problem_is_reported_at_once_with_lines() -> None:
    found = problems(
        """\
        colour: blue
        pipelines:
          - name: a
            erp: {type: memory, colour: red}
            crm: {type: memory-crm}
            pull: {page_size: 0}
        """
    )
    assert [(p, line) for p, _, line in found] == [
        ("colour", 1),
        ("pipelines[0].erp.colour", 4),
        ("pipelines[0].pull.page_size", 6),
    ]


def test_env_interpolation_and_defaults() -> None:
    text = "state: {url: '${DB:-sqlite:///x.db}'}\n" + BASE
    assert parse(text, env={}).state.url == "sqlite:///x.db"
    assert parse(text, env={"DB": "sqlite:///y.db"}).state.url == "sqlite:///y.db"


def test_state_url_env_overrides_config() -> None:
    settings = parse(BASE, env={"STOCKSYNC_STATE_URL": "sqlite:///env.db"})
    assert settings.state.url == "sqlite:///env.db"


def test_valid_config_is_frozen_with_defaults() -> None:
    settings = parse(BASE, env={})
    p = settings.pipelines[0]
    assert (p.schedule.interval_s, p.pull.overlap_s, p.push.max_attempts, p.pull.rescan_days) == (
        60.0,
        120.0,
        8,
        35,
    )
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is internal
        p.name = "other"  # type: ignore[misc]


# -- issue 16: every number has an upper bound and refuses NaN/infinity -----------------

_TOO_BIG = [
    # (the pipeline option, expected path under pipelines[0], expected message)
    ("schedule: {interval_s: 1e400}", "schedule.interval_s", "input should be a finite number"),
    (
        "schedule: {interval_s: 1e35}",
        "schedule.interval_s",
        "input should be less than or equal to 604800",
    ),
    ("schedule: {interval_s: .nan}", "schedule.interval_s", "input should be a finite number"),
    ("schedule: {interval_s: .inf}", "schedule.interval_s", "input should be a finite number"),
    (
        "schedule: {interval_s: 604801}",
        "schedule.interval_s",
        "input should be less than or equal to 604800",
    ),
    (
        "push: {retry_max_s: 1e35}",
        "push.retry_max_s",
        "input should be less than or equal to 604800",
    ),
    (
        "schedule: {max_freshness_s: 604801}",
        "schedule.max_freshness_s",
        "input should be less than or equal to 604800",
    ),
    (
        "schedule: {max_freshness_s: .nan}",
        "schedule.max_freshness_s",
        "input should be a finite number",
    ),
    ("push: {retry_initial_s: -.inf}", "push.retry_initial_s", "input should be a finite number"),
    (
        "push: {max_attempts: 1001}",
        "push.max_attempts",
        "input should be less than or equal to 1000",
    ),
    ("pull: {page_size: -5}", "pull.page_size", "input should be greater than or equal to 1"),
    (
        "pull: {page_size: 10001}",
        "pull.page_size",
        "input should be less than or equal to 10000",
    ),
    (
        "push: {reservations: {'A@W': 1e13}}",
        "push.reservations.A@W",
        "input should be less than or equal to 1000000000000",
    ),
    (
        "alerts: {default_threshold: .nan}",
        "alerts.default_threshold",
        "input should be a finite number",
    ),
    ("alerts: {lead_time_days: .inf}", "alerts.lead_time_days", "input should be a finite number"),
    (
        "crm: {type: memory-crm, precision: 99}",
        "crm.precision",
        "input should be less than or equal to 30",
    ),
]


@pytest.mark.parametrize(("option", "path", "message"), _TOO_BIG)
def test_a_number_out_of_bounds_names_its_path_and_line(
    option: str, path: str, message: str
) -> None:
    text = BASE.replace("    crm: {type: memory-crm}\n", "") if option.startswith("crm:") else BASE
    found = problems(text + f"    {option}\n")
    line = text.count("\n") + 1  # the option is the last line
    assert (f"pipelines[0].{path}", message, line) in found, found


def test_the_freshness_limit_defaults_to_an_hour_or_three_intervals() -> None:
    limits = [
        parse(BASE + f"    schedule: {option}\n", env={}).pipelines[0].schedule.freshness_limit_s
        for option in ("{}", "{interval_s: 7200}", "{interval_s: 7200, max_freshness_s: 9000}")
    ]
    assert limits == [3600, 21600, 9000]


def test_an_option_in_bounds_still_loads() -> None:
    settings = parse(
        BASE + "    schedule: {interval_s: 604800}\n    push: {retry_max_s: 1e5}\n", env={}
    )
    assert settings.pipelines[0].schedule.interval_s == 604800
    assert settings.pipelines[0].push.retry_max_s == 100000


def _numbers(node: object, path: str = "") -> list[tuple[str, dict[str, object]]]:
    """Every integer/number schema in a JSON Schema tree, with where it sits."""
    out: list[tuple[str, dict[str, object]]] = []
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number") and "const" not in node:
            out.append((path, node))
        for key, value in node.items():
            out += _numbers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _numbers(value, f"{path}[{i}]")
    return out


def test_every_number_in_the_config_schema_has_an_upper_bound() -> None:
    from sync.config import json_schema

    numbers = _numbers(json_schema())
    assert len(numbers) >= 20  # the walk found the fields (core + connectors)
    unbounded = [p for p, s in numbers if "maximum" not in s and "exclusiveMaximum" not in s]
    assert unbounded == []

"""``stocksync healthcheck`` asks /healthz where the config says the daemon serves it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from sync import config as cfg
from sync.errors import StockSyncError
from sync.service.health import HealthServer, Metrics, build_app
from sync.service.healthcheck import healthz_url
from sync.state import StateStore


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 9108, "http://127.0.0.1:9108/healthz"),
        ("0.0.0.0", 9200, "http://127.0.0.1:9200/healthz"),
        ("::", 9108, "http://[::1]:9108/healthz"),
        ("::1", 9300, "http://[::1]:9300/healthz"),
        ("10.1.2.3", 80, "http://10.1.2.3:80/healthz"),
        ("stocksync.internal", 9108, "http://stocksync.internal:9108/healthz"),
    ],
)
def test_healthz_url_follows_the_metrics_settings(host: str, port: int, url: str) -> None:
    assert healthz_url(cfg.MetricsSettings(host=host, port=port)) == url


@pytest.mark.parametrize(
    ("metrics", "message"),
    [(None, "metrics is null"), (cfg.MetricsSettings(port=0), "metrics.port is 0")],
)
def test_no_healthz_to_find(metrics: cfg.MetricsSettings | None, message: str) -> None:
    with pytest.raises(StockSyncError, match=message):
        healthz_url(metrics)


def _config(path: Path, metrics: str) -> Path:
    path.write_text(
        f"state: {{url: 'sqlite:///{path.parent / 'state.db'}'}}\n"
        f"metrics: {metrics}\n"
        "pipelines:\n"
        "  - name: main\n"
        "    erp: {type: memory}\n"
        "    crm: {type: memory-crm}\n",
        encoding="utf-8",
    )
    return path


def _healthcheck(config: Path) -> tuple[int, str]:
    from sync.cli.main import app

    result = CliRunner().invoke(app, ["healthcheck", "-c", str(config), "--timeout", "5"])
    structlog.reset_defaults()
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[StateStore, HealthServer]]:
    """The daemon's real /healthz app over its state database, on a free port."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.upgrade()
    pipelines = cfg.load(_config(tmp_path / "probe.yaml", "null")).pipelines
    app = build_app(Metrics(lambda: store, lambda: pipelines), lambda: store, lambda: pipelines)
    with HealthServer(app, "127.0.0.1", 0) as server:
        yield store, server


def test_exit_follows_the_daemons_health(
    served: tuple[StateStore, HealthServer], tmp_path: Path
) -> None:
    store, server = served
    config = _config(tmp_path / "stocksync.yaml", f"{{host: 0.0.0.0, port: {server.port}}}")
    code, text = _healthcheck(config)
    assert code == 1, text
    assert "unhealthy" in text and "503 fail main: no successful cycle yet" in text

    now = datetime.now(UTC)
    store.finish_run(store.start_run("r1", "main", "cycle", now), now, status="ok")
    code, text = _healthcheck(config)
    assert code == 0, text
    assert f"healthy: http://127.0.0.1:{server.port}/healthz: 200 ok" in text


def test_nothing_listening_is_unhealthy(tmp_path: Path) -> None:
    with HealthServer(lambda e, s: [], "127.0.0.1", 0) as gone:
        port = gone.port
    code, text = _healthcheck(_config(tmp_path / "stocksync.yaml", f"{{port: {port}}}"))
    assert code == 1, text
    assert "no answer" in text


def test_without_metrics_there_is_nothing_to_check(tmp_path: Path) -> None:
    code, text = _healthcheck(_config(tmp_path / "stocksync.yaml", "null"))
    assert code == 2, text
    assert "metrics is null" in text


def test_the_probe_needs_no_connector_secret(tmp_path: Path) -> None:
    """A HEALTHCHECK or an operator without the root-only secrets file still probes."""
    path = tmp_path / "stocksync.yaml"
    path.write_text(
        f"state: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\n"
        "metrics: null\n"
        "pipelines:\n"
        "  - name: main\n"
        "    erp: {type: memory}\n"
        "    crm: {type: fxiaoke, base_url: 'http://127.0.0.1:9', app_id: x,\n"
        "          app_secret: '${UNSET_SECRET_FOR_PROBE}', permanent_code: p, open_user_id: u}\n",
        encoding="utf-8",
    )
    code, text = _healthcheck(path)
    assert code == 2 and "metrics is null" in text and "UNSET_SECRET_FOR_PROBE" not in text

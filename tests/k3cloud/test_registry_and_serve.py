"""The registry finds the connector, and ``serve`` runs the emulator as its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import connectors
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.settings import K3CloudSettings
from connectors.k3cloud.source import K3CloudSource
from sync.ports import ConnectorContext

ROOT = Path(__file__).resolve().parents[2]


def test_registry_resolves_settings_factory_and_emulator() -> None:
    spec = connectors.get("k3cloud", "erp")
    assert spec.settings_model() is K3CloudSettings
    factory = spec.emulator_factory()
    assert factory is not None
    emulator = factory("demo")
    assert isinstance(emulator, K3CloudEmulator)
    info = emulator.connection_info("http://127.0.0.1:1")
    settings = K3CloudSettings.model_validate(
        {k: info[k] for k in ("acct_id", "username", "app_id", "app_secret", "lcid")}
        | {"server_url": info["url"]}
    )
    assert isinstance(spec.build(settings, ConnectorContext()), K3CloudSource)
    assert "***" in repr(settings.app_secret)
    assert K3CloudSettings.model_json_schema()["properties"]["status_dates"]["description"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"streams": ["nope"]}, "unknown stream"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"page_size": 2000}, "set pull.page_size"),
        ({"status_dates": ["FApproveDate; drop"]}, "not field keys"),
        ({"qty_fields": {"nope": "FQty"}}, "unknown stream"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_settings_are_rejected(override: dict[str, object], message: str) -> None:
    base = {"server_url": "http://h/k3cloud/", "acct_id": "a", "username": "u", "app_id": "i"}
    with pytest.raises(ValidationError, match=message):
        K3CloudSettings.model_validate({**base, "app_secret": "s" * 8, **override})


def test_serve_prints_connection_info_and_stops_on_sigterm() -> None:
    code = "from connectors.k3cloud.emulator import serve; serve(scenario='demo')"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["url"].endswith("/k3cloud/") and info["lcid"] == 2052
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()

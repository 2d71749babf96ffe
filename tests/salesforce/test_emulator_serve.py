"""``stocksync emulator salesforce`` serves the demo org over HTTPS and prints one JSON line."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

import connectors
from connectors.salesforce.emulator import SalesforceEmulator, build_emulator, start

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_knows_the_emulator() -> None:
    factory = connectors.get("salesforce", "crm").emulator_factory()
    assert factory is not None and isinstance(factory("demo"), SalesforceEmulator)


def test_the_cli_serves_https_and_stops_on_sigterm() -> None:
    code = (
        "import sys; from sync.cli.main import main; "
        "sys.argv[1:] = ['emulator', 'salesforce']; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["url"].startswith("https://127.0.0.1:")
        assert (info["stock_object"], info["external_id_field"], info["api_version"]) == (
            "ProductItem",
            "ERP_Key__c",
            "59.0",
        )
        trust = ssl.create_default_context(cafile=info["ca_cert"])
        with httpx.Client(base_url=info["url"], verify=trust, trust_env=False) as http:
            token = http.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                },
            ).json()
            assert token["instance_url"] == info["url"]
            answer = http.get(
                "/services/data/v59.0/query/",
                params={"q": "SELECT COUNT() FROM Product2"},
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
        assert (
            answer.json()["totalSize"] == 24
            and answer.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert not Path(info["ca_cert"]).exists(), "the certificate folder is removed on exit"
    finally:
        if process.poll() is None:
            process.kill()


def test_start_in_process_over_plain_http_too() -> None:
    with start(build_emulator("empty"), https=False) as running:
        assert running.url.startswith("http://") and running.ca_cert is None
        answer = httpx.post(
            f"{running.url}/services/oauth2/token",
            trust_env=False,
            data={
                "grant_type": "client_credentials",
                **{k: running.connection_info()[k] for k in ("client_id", "client_secret")},
            },
        )
        assert answer.json()["instance_url"] == running.url

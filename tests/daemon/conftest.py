"""The daemon as a subprocess against the K/3 Cloud and Fxiaoke emulators on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_fxiaoke
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.emulator import build_emulator as build_k3cloud
from connectors.k3cloud.scenarios import MATERIALS, WAREHOUSES
from connectors.salesforce.emulator import SalesforceEmulator
from connectors.salesforce.emulator import build_emulator as build_salesforce

ROOT = Path(__file__).resolve().parents[2]
Key = tuple[str, str]


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.1
) -> Any:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(step_s)


@dataclass
class Systems:
    """The ERP and the CRM, served over real HTTP."""

    k3: K3CloudEmulator
    k3_server: LoopbackServer
    #: the CRM: a FxiaokeEmulator, or a SalesforceEmulator (``start_systems("salesforce")``)
    fx: FxiaokeEmulator | SalesforceEmulator
    fx_server: LoopbackServer
    erp_http: Slowed

    def erp_levels(self) -> dict[Key, Decimal]:
        totals: dict[Key, Decimal] = defaultdict(Decimal)
        with self.k3._lock:
            inventory = self.k3.store.inventory()
        for (_org, material, stock, _lot), qty in inventory.items():
            totals[(material, stock)] += qty
        return {k: v for k, v in totals.items() if v}

    def crm_records(self) -> list[dict[str, Any]]:
        return self.fx.stock_records()

    def crm_levels(self) -> dict[Key, Decimal]:
        if isinstance(self.fx, SalesforceEmulator):
            return {k: v for k, v in self.fx.levels().items() if v}
        products = {r["_id"]: r["product_code"] for r in self.fx.records("ProductObj")}
        warehouses = {r["_id"]: r["number"] for r in self.fx.records("WarehouseObj")}
        levels: dict[Key, Decimal] = {}
        for r in self.crm_records():
            qty = Decimal(str(r.get("real_stock") or 0))
            if qty:
                levels[(products[r["product_id"]], warehouses[r["warehouse_id"]])] = qty
        return levels

    def in_sync(self) -> bool:
        return self.crm_levels() == self.erp_levels()

    def crm_duplicates(self) -> list[tuple[str, str]]:
        if isinstance(self.fx, SalesforceEmulator):
            keys = [r.get("ERP_Key__c") for r in self.fx.records("ProductItem")]
            pairs = [(r["Product2Id"], r["LocationId"]) for r in self.fx.records("ProductItem")]
            return [k for k in set(pairs) if pairs.count(k) > 1] + [
                (str(k), "") for k in set(keys) if keys.count(k) > 1
            ]
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for r in self.crm_records():
            seen[(r["product_id"], r["warehouse_id"])] += 1
        return [k for k, n in seen.items() if n > 1]

    def crm_down(self) -> None:
        self.fx_server.stop()

    def crm_up(self) -> None:
        self.fx_server = LoopbackServer(self.fx, port=self.fx_server.port).start()

    def connectors(self) -> dict[str, Any]:
        k3 = self.k3.connection_info(self.k3_server.url)
        fx = self.fx.connection_info(self.fx_server.url)
        if isinstance(self.fx, SalesforceEmulator):
            crm = {
                "type": "salesforce",
                "login_url": fx["url"],
                "client_id": fx["client_id"],
                "client_secret": fx["client_secret"],
                "timeout_s": 5,
                "max_attempts": 1,
            }
        else:
            crm = {
                "type": "fxiaoke",
                "base_url": fx["url"],
                "app_id": fx["app_id"],
                "app_secret": fx["app_secret"],
                "permanent_code": fx["permanent_code"],
                "open_user_id": fx["open_user_id"],
                "timeout_s": 5,
                "max_attempts": 1,
                "rate_limit_calls": 100000,
                "rate_limit_period_s": 1,
            }
        return {
            "erp": {
                "type": "k3cloud",
                "server_url": k3["url"],
                "acct_id": k3["acct_id"],
                "username": k3["username"],
                "app_id": k3["app_id"],
                "app_secret": k3["app_secret"],
                "timeout_s": 5,
                "max_attempts": 2,
            },
            "crm": crm,
        }


class Slowed:
    """Wraps a WSGI app with a settable delay per request (to make cycles last)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay_s = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.app(environ, start_response)


def start_systems(crm: str = "fxiaoke") -> Systems:
    """The demo K/3 Cloud account and a Fxiaoke tenant (or, ``crm="salesforce"``, a
    Salesforce org: ``Systems.fx`` holds it) with its products and warehouses, each served
    on its own loopback port (``stop_systems`` stops both)."""
    k3 = build_k3cloud("demo")
    fx: Any
    if crm == "salesforce":
        fx = build_salesforce(None)
        for material in MATERIALS:
            fx.add_product(material)
        for stock in WAREHOUSES:
            fx.add_location(stock)
    else:
        fx = build_fxiaoke(
            None, rate_limit_calls=1_000_000, rate_limit_period_s=1, token_limit_per_min=10_000
        )
        for material in MATERIALS:
            fx.add_product(material)
        for stock in WAREHOUSES:
            fx.add_warehouse(stock)
    slowed = Slowed(k3)
    k3_server = LoopbackServer(slowed).start()
    fx_server = LoopbackServer(fx).start()
    return Systems(k3, k3_server, fx, fx_server, slowed)


def stop_systems(s: Systems) -> None:
    s.fx_server.stop()
    s.k3_server.stop()


@pytest.fixture
def systems() -> Iterator[Systems]:
    s = start_systems()
    try:
        yield s
    finally:
        stop_systems(s)


def receipt(
    systems: Systems, material: str, stock: str, qty: str, form: str = "STK_InStock"
) -> int:
    """An approved ERP document with one line."""
    fid = systems.k3.create_document(form, [{"material": material, "qty": qty, "stock": stock}])
    systems.k3.audit(form, fid)
    return fid


def pipeline_config(systems: Systems, name: str = "main", **overrides: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "name": name,
        "schedule": {"interval_s": 1},
        "pull": {"page_size": 50, "overlap_s": 5},
        "push": {"retry_initial_s": 1, "retry_max_s": 2, "batch_size": 20},
        **systems.connectors(),
    }
    p.update(overrides)
    return p


def write_config(
    path: Path,
    pipelines: list[dict[str, Any]],
    *,
    state_url: str,
    metrics_port: int | None = 0,
    grace_s: float = 15,
    log_level: str = "info",
    **top: Any,
) -> Path:
    doc: dict[str, Any] = {
        "state": {"url": state_url},
        "log": {"level": log_level, "format": "json"},
        "metrics": None if metrics_port is None else {"host": "127.0.0.1", "port": metrics_port},
        "shutdown_grace_s": grace_s,
        **top,
        "pipelines": pipelines,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)  # atomic: the daemon never reads half a file
    return path


class DaemonProcess:
    """``python -m sync run -c CONFIG`` with its JSON log lines captured in a file."""

    def __init__(self, config: Path, log_path: Path, *args: str) -> None:
        self.config = config
        self.log_path = log_path
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("STOCKSYNC_STATE_URL", None)
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync", "run", "-c", str(config), *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                out.append(event)
        return out

    def wait_event(
        self, name: str, timeout_s: float = 20, count: int = 1, step_s: float = 0.1
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            events = self.events(name)
            if len(events) >= count:
                return events[count - 1]
            if self.proc.poll() is not None:
                pytest.fail(
                    f"daemon exited ({self.proc.returncode}) before {name!r}:\n{self.tail()}"
                )
            return None

        result: dict[str, Any] = wait_until(found, timeout_s, f"log event {name!r}", step_s)
        return result

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines()[-n:])

    @property
    def port(self) -> int:
        return int(self.wait_event("health_listening")["port"])

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def run_cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STOCKSYNC_STATE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )

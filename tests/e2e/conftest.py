"""Both emulators served on loopback and a pipeline built from config, as a user would run it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import build_emulator as build_crm
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.emulator import build_emulator as build_erp
from connectors.salesforce.emulator import SalesforceEmulator
from sync.config import SettingsBase, settings_model
from sync.model import StockKey
from sync.runtime import Pipeline, build_pipeline, open_store

MATERIALS = ("A-100", "PHONE-X", "TABLET-S")
STOCKS = ("WH-MAIN", "WH-EAST")


@dataclass
class Systems:
    erp: K3CloudEmulator
    #: a FxiaokeEmulator, or a SalesforceEmulator (``crm_section`` and ``crm_stock`` follow)
    crm: Any
    erp_url: str
    crm_url: str
    tmp: Path

    def crm_section(self) -> dict[str, Any]:
        """The ``crm:`` settings for the emulator this pipeline writes to."""
        if isinstance(self.crm, SalesforceEmulator):
            sf = self.crm.connection_info(self.crm_url)
            return {
                "type": "salesforce",
                "login_url": sf["url"],
                "client_id": sf["client_id"],
                "client_secret": sf["client_secret"],
                "max_attempts": 2,
            }
        crm = self.crm.connection_info(self.crm_url)
        return {
            "type": "fxiaoke",
            "base_url": crm["url"],
            "app_id": crm["app_id"],
            "app_secret": crm["app_secret"],
            "permanent_code": crm["permanent_code"],
            "open_user_id": crm["open_user_id"],
            "max_attempts": 2,
        }

    def config(self, **pipeline: Any) -> dict[str, Any]:
        erp = self.erp.connection_info(self.erp_url)
        return {
            "state": {"url": f"sqlite:///{self.tmp / 'state.db'}"},
            "metrics": None,
            "pipelines": [
                {
                    "name": "main",
                    "push": {"retry_initial_s": 1},
                    "erp": {
                        "type": "k3cloud",
                        "server_url": erp["url"],
                        "acct_id": erp["acct_id"],
                        "username": erp["username"],
                        "app_id": erp["app_id"],
                        "app_secret": erp["app_secret"],
                        "max_attempts": 2,
                    },
                    "crm": self.crm_section(),
                    **pipeline,
                }
            ],
        }

    def settings(self, **pipeline: Any) -> SettingsBase:
        return settings_model().model_validate(self.config(**pipeline))

    def pipeline(self, **pipeline: Any) -> Pipeline:
        settings = self.settings(**pipeline)
        return build_pipeline(settings.pipelines[0], open_store(settings))

    def erp_stock(self) -> dict[StockKey, Decimal]:
        return {StockKey(*k): v for k, v in self.erp.inventory().items()}

    def crm_stock(self) -> dict[StockKey, Decimal]:
        """The CRM's stock per key (Salesforce: AssertionError on a duplicate record)."""
        if isinstance(self.crm, SalesforceEmulator):
            return {StockKey(*k): v for k, v in self.crm.levels().items()}
        return {StockKey(*k): v for k, v in self.crm.stock_by_code().items()}


def _serve(crm: Any, tmp_path: Path) -> Iterator[Systems]:
    erp = build_erp(None)
    with LoopbackServer(erp) as erp_srv, LoopbackServer(crm) as crm_srv:
        yield Systems(erp, crm, erp_srv.url, crm_srv.url, tmp_path)


@pytest.fixture
def systems(tmp_path: Path) -> Iterator[Systems]:
    crm = build_crm(None)
    for code in MATERIALS:
        crm.add_product(code, code)
    for number in STOCKS:
        crm.add_warehouse(number, number)
    yield from _serve(crm, tmp_path)


@pytest.fixture(params=["fxiaoke", "salesforce"])
def any_crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Systems]:
    """The K/3 Cloud emulator with each CRM emulator in turn, the same codes in both."""
    if request.param == "fxiaoke":
        yield request.getfixturevalue("systems")
        return
    org = SalesforceEmulator()
    for code in MATERIALS:
        org.add_product(code)
    for code in STOCKS:
        org.add_location(code)
    yield from _serve(org, tmp_path)

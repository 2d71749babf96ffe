"""Both emulators served on loopback and a pipeline built from config, as a user would run it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_crm
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.emulator import build_emulator as build_erp
from sync.config import SettingsBase, settings_model
from sync.model import StockKey
from sync.runtime import Pipeline, build_pipeline, open_store

MATERIALS = ("A-100", "PHONE-X", "TABLET-S")
STOCKS = ("WH-MAIN", "WH-EAST")


@dataclass
class Systems:
    erp: K3CloudEmulator
    crm: FxiaokeEmulator
    erp_url: str
    crm_url: str
    tmp: Path

    def config(self, **pipeline: Any) -> dict[str, Any]:
        erp = self.erp.connection_info(self.erp_url)
        crm = self.crm.connection_info(self.crm_url)
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
                    "crm": {
                        "type": "fxiaoke",
                        "base_url": crm["url"],
                        "app_id": crm["app_id"],
                        "app_secret": crm["app_secret"],
                        "permanent_code": crm["permanent_code"],
                        "open_user_id": crm["open_user_id"],
                        "max_attempts": 2,
                    },
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
        return {StockKey(*k): v for k, v in self.crm.stock_by_code().items()}


@pytest.fixture
def systems(tmp_path: Path) -> Iterator[Systems]:
    erp, crm = build_erp(None), build_crm(None)
    for code in MATERIALS:
        crm.add_product(code, code)
    for number in STOCKS:
        crm.add_warehouse(number, number)
    with LoopbackServer(erp) as erp_srv, LoopbackServer(crm) as crm_srv:
        yield Systems(erp, crm, erp_srv.url, crm_srv.url, tmp_path)

"""The Fxiaoke side of the real-Tryton tests: a CRM that knows Tryton's catalogue, and a
Tryton → Fxiaoke pipeline on a SQLite state database, built from a config like a user's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_crm
from sync.config import settings_model
from sync.runtime import Pipeline, build_pipeline, open_store, utcnow
from tests.tryton import scenario
from tests.tryton import server as tryton


def crm_for(
    proteus: Any, skus: Iterable[str] = (), warehouses: Iterable[str] = ()
) -> FxiaokeEmulator:
    """A Fxiaoke emulator knowing every product Tryton stocks (other test modules' own
    included: one shared server), the scenario's and ``skus``, and the scenario's
    warehouses and ``warehouses``."""
    crm = build_crm(None)
    for sku in sorted({*scenario.SKUS, *skus, *scenario.product_codes(proteus)}):
        crm.add_product(sku, sku)
    for code in (*scenario.WAREHOUSES, *warehouses):
        crm.add_warehouse(code, code)
    return crm


def pipeline(
    server: tryton.TrytonServer,
    crm: FxiaokeEmulator,
    crm_url: str,
    state: Path,
    *,
    now: Callable[[], datetime] = utcnow,
    pull: dict[str, Any] | None = None,
) -> Pipeline:
    """A pipeline named "tryton" from Tryton to ``crm`` served at ``crm_url``; state in
    the SQLite file ``state``; ``pull``: the pipeline's ``pull:`` settings."""
    raw: dict[str, Any] = {
        "state": {"url": f"sqlite:///{state}"},
        "metrics": None,
        "pipelines": [
            {
                "name": "tryton",
                "pull": pull or {},
                "erp": {"type": "tryton", **server.settings()},
                "crm": crm.crm_settings(crm_url),
            }
        ],
    }
    settings = settings_model().model_validate(raw)
    return build_pipeline(settings.pipelines[0], open_store(settings), now=now)

"""The two emulators on their default (demo) scenario, as `stocksync emulator …` serves them."""

from __future__ import annotations

from pathlib import Path

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import build_emulator as build_crm
from connectors.k3cloud.emulator import build_emulator as build_erp
from sync.runtime import run_cycle
from tests.e2e.conftest import Systems


def test_the_demo_scenarios_sync_without_blocked_rows(tmp_path: Path) -> None:
    """A newcomer pointing a config at both demo emulators gets the ERP's stock in the CRM,
    not a wall of unmapped_sku: the Fxiaoke demo knows the K/3 Cloud demo's codes."""
    erp, crm = build_erp("demo"), build_crm("demo")
    with LoopbackServer(erp) as erp_srv, LoopbackServer(crm) as crm_srv:
        systems = Systems(erp, crm, erp_srv.url, crm_srv.url, tmp_path)
        pipeline = systems.pipeline()
        try:
            report = run_cycle(pipeline)
        finally:
            pipeline.close()
        assert report.push.blocked == 0 and report.push.dead == 0
        assert systems.crm_stock() == systems.erp_stock()
        assert len(systems.erp_stock()) >= 6

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
        # the demo scenario's one reservation: 15 of 1.01.002 locked at CK001
        key = ("1.01.002", "CK001")
        on_hand = erp.inventory()[key]
        assert erp.reserved() == {key: 15}
        assert crm.stock_by_code("blocked_stock")[key] == 15
        assert crm.stock_by_code("available_stock")[key] == on_hand - 15


def test_the_demo_catalogues_are_one_definition() -> None:
    """Every material and warehouse the K/3 Cloud demo moves stock in is a ProductObj and a
    WarehouseObj of the Fxiaoke demo, with the shared name; nothing else links the two."""
    from connectors._catalogue import K3CLOUD_DEMO_MATERIALS, K3CLOUD_DEMO_WAREHOUSES

    erp, crm = build_erp("demo"), build_crm("demo")
    moved = set(erp.inventory()) | set(erp.reserved())
    products = {r["product_code"]: r["name"] for r in crm.records("ProductObj")}
    warehouses = {r["number"]: r["name"] for r in crm.records("WarehouseObj")}
    assert {sku for sku, _ in moved} == set(K3CLOUD_DEMO_MATERIALS)
    assert {wh for _, wh in moved} == set(K3CLOUD_DEMO_WAREHOUSES)
    assert K3CLOUD_DEMO_MATERIALS.items() <= products.items()
    assert K3CLOUD_DEMO_WAREHOUSES.items() <= warehouses.items()
    # the `stocksync demo` story's warehouses stay in the catalogue beside them
    assert {"WH-MAIN", "WH-EAST"} <= set(warehouses)


def test_the_demo_story_shows_a_reservation_before_its_shipment(tmp_path: Path) -> None:
    """The README's demo, one cycle per step: the order for 25 tablets first moves the
    CRM's available (on hand stays 30), then its shipment moves on hand (available stays)."""
    from connectors import demo
    from connectors.fxiaoke.emulator import FxiaokeEmulator
    from connectors.k3cloud.emulator import K3CloudEmulator

    erp, crm = K3CloudEmulator(), FxiaokeEmulator()
    demo.seed(erp, crm)
    tablets = ("TABLET-S", "WH-MAIN")
    seen: list[tuple[str, demo.Figures, demo.Figures]] = []
    with LoopbackServer(erp) as erp_srv, LoopbackServer(crm) as crm_srv:
        systems = Systems(erp, crm, erp_srv.url, crm_srv.url, tmp_path)
        pipeline = systems.pipeline()
        try:
            run_cycle(pipeline)
            for step in demo.STORY:
                step.act(erp)
                run_cycle(pipeline)
                erp_side, crm_side = demo.erp_figures(erp), demo.crm_figures(crm)
                assert crm_side == erp_side, step.say
                seen.append((step.say, erp_side[tablets], crm_side[tablets]))
        finally:
            pipeline.close()
    # (on hand, reserved, available) in the ERP, (real, blocked, available) in the CRM
    *_, (_, _, shown_before), (reserved, _, shown_reserved), (shipped, _, shown_shipped) = seen
    assert shown_before == (30, 0, 30)
    assert "reserved" in reserved and shown_reserved == (30, 25, 5)
    assert "shipped" in shipped and shown_shipped == (5, 0, 5)
    from rich.console import Console

    console = Console(record=True, width=80)
    console.print(demo.render(demo.erp_figures(erp), demo.crm_figures(crm), [], 0.0))
    text = console.export_text()
    assert "reserved" in text and "available" in text
    row = "│ TABLET-S │ WH-MAIN   │       5 │        0 │    5 │         5 │ in sync · LOW │"
    assert row in text


def test_the_demo_story_reaches_salesforce_step_by_step(tmp_path: Path) -> None:
    """`stocksync demo --crm salesforce`: the same story into the Salesforce emulator's
    ProductItem (on hand, reserved and available), equal to the ERP after every step."""
    from connectors import demo
    from connectors.k3cloud.emulator import K3CloudEmulator
    from sync.config import settings_model
    from sync.runtime import build_pipeline, open_store

    erp, side = K3CloudEmulator(), demo.SalesforceSide()
    demo.seed_erp(erp)
    side.seed()
    with LoopbackServer(erp) as erp_srv, LoopbackServer(side.emulator) as crm_srv:
        raw = demo.demo_config(
            erp.connection_info(erp_srv.url),
            side.settings(crm_srv.url),
            f"sqlite:///{tmp_path / 'demo.db'}",
            1.0,
        )
        settings = settings_model().model_validate(raw)
        pipeline = build_pipeline(settings.pipelines[0], open_store(settings))
        try:
            run_cycle(pipeline)
            for step in demo.STORY:
                step.act(erp)
                assert run_cycle(pipeline).push.failed == 0, step.say
                assert side.figures() == demo.erp_figures(erp), step.say
        finally:
            pipeline.close()
    assert side.figures()[("TABLET-S", "WH-MAIN")] == (5, 0, 5)
    assert side.emulator.calls["describe"] <= 2  # cached, not one per push

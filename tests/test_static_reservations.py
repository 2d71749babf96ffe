"""Static reservations (``push.reservations``): SKU@WAREHOUSE only, added to the ERP's figure.

Issue 15's case: A-100 has 80 in WH-MAIN and 10 in WH-EAST. A bare ``A-100: 29``
used to be subtracted from every warehouse (available 51 and −19, sum 32);
it is refused now, and ``A-100@WH-MAIN: 29`` gives 51 and 10 (sum 61 = 90 − 29).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from connectors._emulator import transport_for
from connectors.fxiaoke.emulator import build_emulator
from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.errors import ConfigError
from sync.model import LevelValue, StockKey
from sync.runtime import Pipeline, build_pipeline, run_cycle
from sync.state import StateStore
from sync.state.store import LEVEL, level_ref
from tests.conftest import Clock
from tests.fxiaoke.conftest import BASE_URL, FakeClock
from tests.reconcile.conftest import MakePipeline, MemoryPipeline, memory_yaml, pipelines_on
from tests.test_cli import run

MAIN, EAST = StockKey("A-100", "WH-MAIN"), StockKey("A-100", "WH-EAST")


@pytest.fixture
def make_pipeline(store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    yield from pipelines_on(store, clock)


def _issue_case(mp: MemoryPipeline) -> None:
    mp.erp.set_opening("A-100", "WH-MAIN", 80)
    mp.erp.set_opening("A-100", "WH-EAST", 10)


def _crm(mp: MemoryPipeline) -> dict[StockKey, LevelValue]:
    return {r.key: r.value for r in mp.crm.levels.values()}


def _writes(mp: MemoryPipeline) -> int:
    return mp.crm.calls["create_level"] + mp.crm.calls["update_level"]


# ------------------------------------------------------------------ the config
def test_check_config_refuses_a_bare_sku_and_says_to_name_the_warehouse(tmp_path: Path) -> None:
    config = tmp_path / "stocksync.yaml"
    config.write_text(memory_yaml("main", "    push:\n      reservations: {A-100: 29}\n"))
    result = run("check-config", str(config))
    assert result.returncode == 2  # as every invalid configuration
    assert (
        "pipelines[0].push.reservations.A-100 (line 8): 'A-100' names no warehouse: a "
        "reservation holds stock in one warehouse, so write it as 'A-100@WAREHOUSE'"
    ) in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    config.write_text(memory_yaml("main", "    push:\n      reservations: {A-100@WH-MAIN: 29}\n"))
    assert run("check-config", str(config)).returncode == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("A-100@WH-MAIN: -1", "greater than or equal to 0"),
        ("A-100@WH-MAIN: '0.0000001'", "at most 6 decimal places"),
        ("'@WH-MAIN': 1", "names no SKU: write it as 'SKU@WH-MAIN'"),
        ("'A-100@': 1", "names no warehouse"),
    ],
)
def test_a_static_reservation_must_be_exact_and_not_negative(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg.parse(memory_yaml("main", f"    push: {{reservations: {{{entry}}}}}\n"))
    (problem,) = err.value.problems
    assert problem.path.startswith("pipelines[0].push.reservations.") and message in problem.message
    # six decimals are exact: accepted as they are
    six = cfg.parse(memory_yaml("main", "    push: {reservations: {A@W: '0.000001'}}\n"))
    assert six.pipelines[0].push.reservations == {"A@W": Decimal("0.000001")}


# ------------------------------------------------------------------ the push
def test_the_issue_case_one_warehouse_of_two(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline("    push: {reservations: {A-100@WH-MAIN: 29}}\n")
    _issue_case(mp)
    run_cycle(mp.pipeline)
    crm = _crm(mp)
    assert crm == {
        MAIN: LevelValue(Decimal(80), Decimal(51)),
        EAST: LevelValue(Decimal(10), Decimal(10)),
    }
    assert (crm[MAIN].reserved, crm[EAST].reserved) == (29, 0)
    assert sum(v.available for v in crm.values()) == 61  # 90 − 29


def test_the_issue_case_in_fxiaoke_blocked_stock(store: StateStore) -> None:
    clock = FakeClock()
    emulator = build_emulator("demo", clock=clock.time)
    emulator.add_product("A-100")
    name = "static-fx"
    erp = memory_source.REGISTRY[name] = memory_source.MemoryErp(now=clock.now)
    erp.set_opening("A-100", "WH-MAIN", 80)
    erp.set_opening("A-100", "WH-EAST", 10)
    info = emulator.connection_info(BASE_URL)
    crm = ", ".join(
        f"{k}: '{info[k]}'" for k in ("app_id", "app_secret", "permanent_code", "open_user_id")
    )
    yaml = (
        f"pipelines:\n  - name: {name}\n    erp: {{type: memory}}\n"
        f"    crm: {{type: fxiaoke, base_url: '{BASE_URL}', {crm}}}\n"
        "    push: {reservations: {A-100@WH-MAIN: 29}}\n"
    )
    pipeline = build_pipeline(
        cfg.parse(yaml).pipeline(name), store, now=clock.now, http_transport=transport_for(emulator)
    )
    try:
        assert run_cycle(pipeline).push.created == 2
        warehouses = {r["_id"]: r["number"] for r in emulator.records("WarehouseObj")}
        shown = {
            warehouses[r["warehouse_id"]]: (
                r["real_stock"],
                r["available_stock"],
                r["blocked_stock"],
            )
            for r in emulator.stock_records()
        }
        assert shown == {"WH-MAIN": ("80", "51", "29"), "WH-EAST": ("10", "10", "0")}
    finally:
        pipeline.close()
        memory_source.REGISTRY.pop(name, None)


def test_the_static_figure_adds_to_the_erp_reservation(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline("    push: {reservations: {A-100@WH-MAIN: 29}}\n")
    _issue_case(mp)
    mp.erp.reserve("A-100", "WH-MAIN", 11)
    mp.erp.reserve("A-100", "WH-EAST", "2.5")
    run_cycle(mp.pipeline)
    assert _crm(mp) == {
        MAIN: LevelValue(Decimal(80), Decimal(40)),  # 80 − (11 + 29)
        EAST: LevelValue(Decimal(10), Decimal("7.5")),  # no static figure there
    }
    mp.erp.reserve("A-100", "WH-MAIN", 0)  # the ERP releases: the static 29 stays
    run_cycle(mp.pipeline)
    assert _crm(mp)[MAIN] == LevelValue(Decimal(80), Decimal(51))


def _reload(mp: MemoryPipeline, reservations: str, clock: Clock) -> Pipeline:
    """A new pipeline from new settings on the same state DB (a config reload)."""
    settings = cfg.parse(memory_yaml(mp.name, f"    push: {{reservations: {reservations}}}\n"))
    return build_pipeline(settings.pipeline(mp.name), mp.store, now=clock)


def test_a_changed_static_figure_requeues_exactly_its_keys(
    make_pipeline: MakePipeline, clock: Clock
) -> None:
    first = "{A-100@WH-MAIN: 29, B-200@WH-MAIN: 5, C-300@WH-MAIN: 1}"
    mp = make_pipeline(f"    push: {{reservations: {first}}}\n")
    _issue_case(mp)
    for sku in ("B-200", "C-300", "D-400"):
        mp.erp.set_opening(sku, "WH-MAIN", 20)
    run_cycle(mp.pipeline)
    assert mp.store.outbox_rows(mp.name) == [] and _writes(mp) == 5
    # 29 → 30, WH-EAST gets 2, B-200 stays 5 (written as 5.0), C-300 is dropped
    second = "{A-100@WH-MAIN: 30, A-100@WH-EAST: 2, B-200@WH-MAIN: '5.0'}"
    reloaded = _reload(mp, second, clock)
    assert reloaded.refresh_reservations().changed == 3
    queued = {row.ref for row in mp.store.outbox_rows(mp.name) if row.target == LEVEL}
    assert queued == {level_ref(k) for k in (MAIN, EAST, StockKey("C-300", "WH-MAIN"))}
    result = run_cycle(reloaded)
    assert (result.push.updated, _writes(mp)) == (3, 8)
    assert _crm(mp)[MAIN] == LevelValue(Decimal(80), Decimal(50))
    assert _crm(mp)[EAST] == LevelValue(Decimal(10), Decimal(8))
    assert _crm(mp)[StockKey("C-300", "WH-MAIN")] == LevelValue(Decimal(20), Decimal(20))
    # a quiet cycle: nothing queued, not one CRM write
    quiet = run_cycle(reloaded)
    assert (quiet.reserved, quiet.push.pushed, _writes(mp)) == (0, 0, 8)
    assert mp.store.outbox_rows(mp.name) == []
    # the same settings built again (a reload that changed nothing else) queue nothing
    assert _reload(mp, second, clock).refresh_reservations().changed == 0


def test_a_reservation_typed_for_a_sku_the_crm_lacks_blocks_until_removed(
    store: StateStore, clock: Clock
) -> None:
    """A typo in ``push.reservations`` names a SKU the CRM does not know: its row is
    blocked (unmapped_sku) while it holds a reservation; once the entry is removed there
    is nothing to show, so the row is finished and the conflict resolved, not left
    blocked for ever (which would make every ``once`` exit 1)."""
    name = f"p{uuid.uuid4().hex[:10]}"
    crm = memory_sink.REGISTRY[name] = MemoryCrm(skus={"A-100"})
    memory_source.REGISTRY[name] = MemoryErp(now=clock)
    try:
        typo = cfg.parse(_yaml(name, "{A-1OO@WH-MAIN: 29}")).pipeline(name)
        report = run_cycle(build_pipeline(typo, store, now=clock))
        assert report.push.blocked == 1
        (conflict,) = store.conflicts(pipeline=name, kind="unmapped_sku")
        assert conflict.resolution is None
        clock.advance(60)
        fixed = cfg.parse(_yaml(name, "{A-100@WH-MAIN: 29}")).pipeline(name)
        report = run_cycle(build_pipeline(fixed, store, now=clock))
        assert report.push.blocked == 0 and store.outbox_rows(name) == []
        (conflict,) = store.conflicts(pipeline=name, kind="unmapped_sku")
        assert conflict.resolution == "nothing_to_write"
        assert crm.values() == {StockKey("A-100", "WH-MAIN"): Decimal(0)}
    finally:
        memory_source.REGISTRY.pop(name, None)
        memory_sink.REGISTRY.pop(name, None)


def _yaml(name: str, reservations: str) -> str:
    return memory_yaml(name, f"    push: {{reservations: {reservations}}}\n")

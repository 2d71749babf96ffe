"""What Tryton's on-hand counts, end to end: real Tryton → engine (SQLite) → Fxiaoke emulator.

After every cycle the ledger level equals Tryton's own quantity for every
product × warehouse, and reconcile never had to write an ADJUSTMENT. Cases:
product types (assets, consumables), moves dated in the future (the clock moves),
locations moved and warehouse codes renamed, a move to a warehouse without a
code, a move in dozens, cancelled moves and many moves sharing one write_date
across a page boundary; and which setting is wrong when the connection fails.

It leaves a warehouse without a code and future-dated moves behind, so it runs on a
Tryton server of its own (the module-scoped fixtures below), never on the one the other
files share: under pytest-xdist a file may run before or after any other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.tryton.source import TrytonSettings, build
from sync.errors import PermanentError
from sync.ledger import verify
from sync.ports import ConnectorContext
from sync.reconcile_run import ADJUSTMENT_STREAM, reconcile
from sync.runtime import Pipeline, run_cycle
from tests.tryton import documents, rig, scenario
from tests.tryton import server as tryton

pytestmark = pytest.mark.tryton

EPOCH = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
NEW_SKUS = ("ASSET-1", "CONS-1", "P-4", "P-5")


class Clock:
    """The pipeline's clock: real time plus ``shift``."""

    def __init__(self) -> None:
        self.shift = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.shift

    def today(self) -> dt.date:
        return self().date()  # the server runs with TZ=UTC and the company has no zone


Factory = Callable[..., tuple[Pipeline, FxiaokeEmulator]]


@pytest.fixture(scope="module")
def tryton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tryton.TrytonServer]:
    """This module's own server (overrides the package's shared one)."""
    from tests.tryton.conftest import own_server

    with own_server(tmp_path_factory, "tryton-what-counts") as server:
        yield server


@pytest.fixture(scope="module")
def tryton_proteus(tryton_server: tryton.TrytonServer) -> Iterator[Any]:
    with tryton.proteus_session(tryton_server) as config:
        yield config


@pytest.fixture(scope="module")
def tryton_scenario(tryton_proteus: Any) -> dict[str, int]:
    return scenario.initial_scenario(tryton_proteus)


@pytest.fixture
def make_pipeline(
    tryton_server: tryton.TrytonServer,
    tryton_scenario: dict[str, int],
    tryton_proteus: Any,
    tmp_path: Path,
) -> Iterator[Factory]:
    """Builds pipelines on one state DB and one CRM (a rebuild is a process restart)."""
    documents.product(tryton_proteus, "ASSET-1", "assets")
    documents.product(tryton_proteus, "CONS-1", consumable=True)
    for sku in ("P-4", "P-5"):
        documents.product(tryton_proteus, sku)
    crm = rig.crm_for(tryton_proteus, NEW_SKUS, ("WH9",))
    built: list[Pipeline] = []
    with LoopbackServer(crm) as srv:

        def factory(clock: Clock, page_size: int = 1000) -> tuple[Pipeline, FxiaokeEmulator]:
            pull = {"overlap_s": 5, "page_size": page_size}
            state = tmp_path / "state.db"
            pipeline = rig.pipeline(tryton_server, crm, srv.url, state, now=clock, pull=pull)
            built.append(pipeline)
            return pipeline, crm

        yield factory
        for pipeline in built:
            pipeline.close()


def assert_exact(
    pipeline: Pipeline,
    crm: FxiaokeEmulator,
    config: Any,
    day: dt.date,
    codes: tuple[str, ...] = scenario.WAREHOUSES,
) -> dict[tuple[str, str], Decimal]:
    """Ledger = CRM = Tryton's own quantity on ``day``, for every key; no ADJUSTMENT."""
    assert documents.open_moves_between(config, dt.date.today(), day) == 0
    truth = documents.quantities_at(config, day, list(codes))
    levels = {(k.sku, k.warehouse): v for k, v in pipeline.store.levels("tryton").items() if v}
    assert levels == truth
    crm_levels = {k: v for k, v in crm.stock_by_code().items() if v}
    assert crm_levels == truth
    assert verify(pipeline.store, "tryton") == {}
    assert list(pipeline.store.movements_in_window("tryton", ADJUSTMENT_STREAM, EPOCH)) == []
    return truth


def test_assets_count_and_reconcile_keeps_them(make_pipeline: Factory, tryton_proteus: Any) -> None:
    clock = Clock()
    pipeline, crm = make_pipeline(clock)
    scenario.purchase_received(tryton_proteus, "WH", {"ASSET-1": 5})
    # a consumable may be shipped beyond its stock: Tryton's quantity goes negative
    scenario.purchase_received(tryton_proteus, "WH2", {"CONS-1": 4})
    scenario.sale_shipped(tryton_proteus, "WH2", {"CONS-1": 6})
    run_cycle(pipeline)
    truth = assert_exact(pipeline, crm, tryton_proteus, clock.today())
    assert truth[("ASSET-1", "WH")] == 5
    assert truth[("CONS-1", "WH2")] == -2

    fixed = reconcile(pipeline, apply_changes=True)
    assert fixed.conflicts == [], [(f.kind, f.key) for f in fixed.conflicts]
    truth = assert_exact(pipeline, crm, tryton_proteus, clock.today())
    assert truth[("ASSET-1", "WH")] == 5


def test_a_move_counts_from_its_effective_date(make_pipeline: Factory, tryton_proteus: Any) -> None:
    clock = Clock()
    today = clock.today()
    wh = scenario._warehouse(tryton_proteus, "WH")
    wh2 = scenario._warehouse(tryton_proteus, "WH2")
    lost = documents.lost_found(tryton_proteus)
    # done before the first run, dated in two days: the opening must not contain it
    documents.move_done(
        tryton_proteus,
        "SKU-002",
        6,
        lost,
        wh.storage_location,
        effective_date=today + dt.timedelta(days=2),
    )
    pipeline, crm = make_pipeline(clock)
    run_cycle(pipeline)
    before = assert_exact(pipeline, crm, tryton_proteus, today)

    # done after the first run, dated tomorrow, into WH2
    documents.move_done(
        tryton_proteus,
        "SKU-001",
        2,
        lost,
        wh2.storage_location,
        effective_date=today + dt.timedelta(days=1),
    )
    run_cycle(pipeline)
    assert assert_exact(pipeline, crm, tryton_proteus, today) == before

    clock.shift = dt.timedelta(days=1)  # tomorrow: no new ERP write, the level changes
    result = run_cycle(pipeline)
    assert result.applied == 1
    tomorrow = assert_exact(pipeline, crm, tryton_proteus, today + dt.timedelta(days=1))
    assert tomorrow[("SKU-001", "WH2")] == before[("SKU-001", "WH2")] + 2
    assert tomorrow[("SKU-002", "WH")] == before[("SKU-002", "WH")]

    clock.shift = dt.timedelta(days=2)
    run_cycle(pipeline)
    later = assert_exact(pipeline, crm, tryton_proteus, today + dt.timedelta(days=2))
    assert later[("SKU-002", "WH")] == before[("SKU-002", "WH")] + 6
    assert run_cycle(pipeline).applied == 0


def test_locations_moved_and_codes_renamed_are_followed(
    make_pipeline: Factory, tryton_proteus: Any
) -> None:
    clock = Clock()
    today = clock.today()
    wh = scenario._warehouse(tryton_proteus, "WH")
    wh2 = scenario._warehouse(tryton_proteus, "WH2")
    shelf = documents.location(tryton_proteus, "SHELF-X", wh.storage_location)
    pipeline, crm = make_pipeline(clock)
    documents.internal(tryton_proteus, wh.storage_location, shelf, {"SKU-001": 4})  # inside WH
    run_cycle(pipeline)
    before = assert_exact(pipeline, crm, tryton_proteus, today)

    # the shelf and its 4 units now belong to WH2: Tryton's WH2 rises by 4
    documents.reparent(tryton_proteus, shelf, wh2.storage_location)
    run_cycle(pipeline)
    moved = assert_exact(pipeline, crm, tryton_proteus, today)
    assert moved[("SKU-001", "WH2")] == before[("SKU-001", "WH2")] + 4
    assert moved[("SKU-001", "WH")] == before[("SKU-001", "WH")] - 4

    # and back: the transfer legs the move had meanwhile are withdrawn
    documents.reparent(tryton_proteus, shelf, wh.storage_location)
    run_cycle(pipeline)
    assert assert_exact(pipeline, crm, tryton_proteus, today) == before

    # a code renamed while the daemon is down: the next process re-attributes
    pipeline.close()
    documents.recode(tryton_proteus, "WH2", "WH9")
    try:
        pipeline, crm = make_pipeline(clock)
        run_cycle(pipeline)
        renamed = assert_exact(pipeline, crm, tryton_proteus, today, ("WH", "WH9"))
        assert renamed[("SKU-001", "WH9")] == before[("SKU-001", "WH2")]
        assert not [k for k in renamed if k[1] == "WH2"]
    finally:
        documents.recode(tryton_proteus, "WH9", "WH2")
    run_cycle(pipeline)  # same process: renamed back
    assert assert_exact(pipeline, crm, tryton_proteus, today) == before


def test_a_leg_at_a_warehouse_without_code_is_quarantined_alone(
    make_pipeline: Factory, tryton_proteus: Any
) -> None:
    clock = Clock()
    today = clock.today()
    nowhere = documents.uncoded_warehouse(tryton_proteus)
    wh = scenario._warehouse(tryton_proteus, "WH")
    wh2 = scenario._warehouse(tryton_proteus, "WH2")
    pipeline, crm = make_pipeline(clock)
    run_cycle(pipeline)
    before = assert_exact(pipeline, crm, tryton_proteus, today)

    # one move from WH into the uncoded warehouse: a shelf filled inside WH, then moved
    shelf = documents.location(tryton_proteus, "SHELF-N", wh.storage_location)
    out = documents.internal(tryton_proteus, wh.storage_location, shelf, {"SKU-002": 3})
    documents.reparent(tryton_proteus, shelf, nowhere.storage_location)
    # and back out of it into WH2, through transit: the leg out of it is a move of its own
    back = documents.internal(
        tryton_proteus, nowhere.storage_location, wh2.storage_location, {"SKU-002": 1}
    )
    result = run_cycle(pipeline)
    assert result.rejected >= 2  # the leg into, and the leg out of, the uncoded warehouse
    after = assert_exact(pipeline, crm, tryton_proteus, today)
    assert after[("SKU-002", "WH")] == before[("SKU-002", "WH")] - 3
    assert after[("SKU-002", "WH2")] == before.get(("SKU-002", "WH2"), 0) + 1
    refs = {c.ref for c in pipeline.store.conflicts(pipeline="tryton")}
    # quarantined: the leg into the uncoded warehouse, and the leg out of it to transit
    into = [r for r in refs if r.startswith(f"tryton:stock.shipment.internal:{out}:")]
    out_of = [r for r in refs if r.startswith(f"tryton:stock.shipment.internal:{back}:")]
    assert [r.rsplit(":", 1)[1] for r in into] == ["in"], refs
    assert [r.rsplit(":", 1)[1] for r in out_of] == ["out"], refs


def test_units_cancellations_and_one_stamp_across_pages(
    make_pipeline: Factory, tryton_proteus: Any
) -> None:
    clock = Clock()
    today = clock.today()
    pipeline, crm = make_pipeline(clock, page_size=2)
    run_cycle(pipeline)
    before = assert_exact(pipeline, crm, tryton_proteus, today)

    # five incoming moves done in one transaction share a write_date; pages of 2
    receipt = scenario.purchase_received(
        tryton_proteus, "WH2", {"SKU-001": 1, "SKU-002": 2, "SKU-003": 3, "P-4": 4, "P-5": 5}
    )
    assert len(set(scenario.shipment_in_stamps(tryton_proteus, receipt))) == 1
    # 2 dozen of a product kept in units count as 24
    lost = documents.lost_found(tryton_proteus)
    wh = scenario._warehouse(tryton_proteus, "WH")
    dozen = documents.dozen(tryton_proteus)
    documents.move_done(tryton_proteus, "SKU-003", 2, lost, wh.storage_location, unit=dozen)
    # an assigned sale shipment, cancelled: never counted
    documents.cancelled_sale(tryton_proteus, "WH", {"SKU-001": 2})
    run_cycle(pipeline)
    after = assert_exact(pipeline, crm, tryton_proteus, today)
    assert after[("SKU-003", "WH")] == before.get(("SKU-003", "WH"), 0) + 24
    assert after[("P-5", "WH2")] == before.get(("P-5", "WH2"), 0) + 5
    assert after[("SKU-001", "WH")] == before[("SKU-001", "WH")]


# -- which setting is wrong ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"database": "no_such_db"}, "erp.database"),
        ({"password": "not-the-password"}, "erp.password"),
        ("/tryton", "erp.url"),
    ],
)
def test_a_wrong_setting_is_named_without_retry_or_secret(
    tryton_server: tryton.TrytonServer, overrides: dict[str, str] | str, setting: str
) -> None:
    if isinstance(overrides, str):  # a path after the server's address
        overrides = {"url": tryton_server.url + overrides}
    sleeps: list[float] = []
    source = build(
        TrytonSettings(**tryton_server.settings(**overrides)), ConnectorContext(sleep=sleeps.append)
    )
    with pytest.raises(PermanentError) as info:
        source.check()
    source.close()
    message = f"{info.value} {info.value.hint}"
    assert setting in message
    assert info.value.context["setting"] == setting
    assert "doctype" not in message.lower()
    assert tryton_server.password not in message and "not-the-password" not in message
    assert sleeps == []

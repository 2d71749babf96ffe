"""Property: any interleaving of stock moves, reservations, releases, crashes and CRM edits
leaves the CRM showing the ERP's on hand, reserved and available for every key.

The ERP (memory) changes between cycles: movements in and out, reservations made,
changed and released (by cancellation, or by a shipment that releases them in the
same ERP transaction), reservations over on hand. Cycles crash part-way (the
reserved snapshot fails, a CRM update fails or its answer is lost), and people
edit the CRM. After every cycle that completed, the CRM equals the ERP on real and
available stock for every key whose record the CRM cannot have been edited since;
at the end, after one reconcile with ``erp_wins``, for every key, with one record
per key. The oracle is the ERP's own figures: on hand from its lines, reserved
from its reservations, never from the ledger.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.errors import TransientError
from sync.model import LevelValue, Movement, MovementKind, Reserved, StockKey
from sync.reconcile_run import reconcile
from sync.runtime import Pipeline, build_pipeline, run_cycle
from sync.state import StateStore
from tests.conftest import Clock

EXAMPLES = int(os.environ.get("STOCKSYNC_RESERVED_EXAMPLES", "120"))
SKUS = ("A-100", "B-200")
WAREHOUSES = ("WH-MAIN", "WH-EAST", "WH-WEST")
QTY = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(60), places=1)
KEY = st.tuples(st.sampled_from(SKUS), st.sampled_from(WAREHOUSES))
#: where in a cycle the ERP ships a reserved order: once the pull has read everything,
#: or once the reserved snapshot has been read
MOMENTS = ("after_pull", "after_snapshot")

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), KEY, QTY),
        st.tuples(st.just("ship"), KEY, QTY),
        st.tuples(st.just("reserve"), KEY, QTY),
        st.tuples(st.just("release"), KEY),
        st.tuples(st.just("ship_reserved"), KEY),
        st.tuples(st.just("cancel_line"), st.integers(0, 40)),
        st.tuples(st.just("crm_edit"), KEY, QTY),
        st.tuples(st.just("cycle"), st.sampled_from(["ok", "snapshot_fails", "crm_fails"])),
        st.tuples(st.just("ship_during_cycle"), KEY, st.sampled_from(MOMENTS)),
    ),
    max_size=30,
)


class World:
    """One memory pipeline, its ERP and CRM, and which CRM records a person touched."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.clock = clock
        self.name = f"r{uuid.uuid4().hex[:10]}"
        self.erp = memory_source.REGISTRY[self.name] = MemoryErp(now=clock)
        self.crm = memory_sink.REGISTRY[self.name] = MemoryCrm()
        yaml_text = (
            "state: {url: 'sqlite://'}\n"
            f"pipelines:\n  - name: {self.name}\n"
            "    erp: {type: memory}\n    crm: {type: memory-crm}\n"
            "    pull: {overlap_s: 0}\n"
            "    push: {retry_initial_s: 1, retry_max_s: 1, max_attempts: 1000}\n"
        )
        settings_ = cfg.parse(yaml_text)
        self.pipeline: Pipeline = build_pipeline(settings_.pipeline(self.name), store, now=clock)
        self.lines: list[str] = []
        #: keys whose CRM record a person edited since the last reconcile
        self.edited: set[StockKey] = set()
        self.n = 0

    def move(self, sku: str, wh: str, qty: Decimal) -> None:
        self.n += 1
        self.clock.advance(1)
        kind = MovementKind.RECEIPT if qty > 0 else MovementKind.SHIPMENT
        key = f"memory:d{self.n}:{self.n}:1"
        self.erp.put(Movement(key, kind, sku, wh, qty, self.clock.now, self.clock.now))
        self.lines.append(key)

    def reserved(self) -> dict[StockKey, Decimal]:
        return {r.stock_key: r.qty for r in self.erp.reserved() or ()}

    def apply(self, op: tuple[Any, ...]) -> None:
        name = op[0]
        if name in ("receive", "ship"):
            (sku, wh), qty = op[1], op[2]
            self.move(sku, wh, qty if name == "receive" else -qty)
        elif name == "reserve":
            (sku, wh), qty = op[1], op[2]
            self.erp.reserve(sku, wh, qty)
        elif name == "release":
            sku, wh = op[1]
            self.erp.reserve(sku, wh, 0)
        elif name == "ship_reserved":
            # the order ships: its reservation is released in the same ERP transaction
            sku, wh = op[1]
            held = self.reserved().get(StockKey(sku, wh), Decimal(0))
            if held:
                self.move(sku, wh, -held)
                self.erp.reserve(sku, wh, 0)
        elif name == "cancel_line":
            if self.lines:
                self.erp.set_active(self.lines[op[1] % len(self.lines)], False)
        elif name == "ship_during_cycle":
            (sku, wh), moment = op[1], op[2]
            self.ship_during_cycle(StockKey(sku, wh), str(moment))
        elif name == "crm_edit":
            (sku, wh), qty = op[1], op[2]
            key = StockKey(sku, wh)
            for record in self.crm.levels.values():
                if record.key == key:
                    record.value = LevelValue(qty, qty - Decimal(1))
                    self.edited.add(key)
        else:
            self.cycle(str(op[1]))

    def cycle(self, fault: str) -> None:
        self.clock.advance(5)
        if fault == "snapshot_fails":
            self.fail_snapshot_once()
        elif fault == "crm_fails":
            self.crm.faults += [("update_level", "fail"), ("create_level", "lost")]
        try:
            run_cycle(self.pipeline)
        except TransientError:
            return
        finally:
            # the CRM failed during *this* cycle: faults a cycle with nothing to push left
            # unused must not fail the "ok" cycles after it (three such cycles queued six,
            # and the end's drain never saw a working CRM; Hypothesis found it)
            self.crm.faults.clear()
        if fault == "ok" and not self.pipeline.store.outbox_rows(self.name):
            self.assert_crm_equals_erp(skip=self.edited)

    def ship_during_cycle(self, key: StockKey, moment: str) -> None:
        """A reserved order ships while a cycle runs (shipment and release in one ERP
        transaction). Right after that cycle the CRM may show the shipment late (available
        high by the quantity, for one cycle), never counted twice (available low by it)."""
        held = self.reserved().get(key, Decimal(0))
        if not held or key in self.edited:
            return
        erp, real_pull, real_reserved = self.erp, MemoryErp.pull, MemoryErp.reserved

        def ship() -> None:
            erp.pull = lambda *a: real_pull(erp, *a)  # type: ignore[method-assign]
            erp.reserved = lambda: real_reserved(erp)  # type: ignore[method-assign]
            self.move(key.sku, key.warehouse, -held)
            erp.reserve(key.sku, key.warehouse, 0)

        def pull_then_ship(*args: object) -> Iterator[object]:
            yield from real_pull(erp, *args)  # type: ignore[arg-type]
            ship()

        def snapshot_then_ship() -> list[Reserved] | None:
            items = real_reserved(erp)
            ship()
            return items

        if moment == "after_pull":
            erp.pull = pull_then_ship  # type: ignore[method-assign,assignment]
        else:
            erp.reserved = snapshot_then_ship  # type: ignore[method-assign]
        self.clock.advance(5)
        try:
            run_cycle(self.pipeline)
        except TransientError:
            return
        if self.pipeline.store.outbox_rows(self.name):
            return  # a CRM fault left from an earlier op: the push is not through yet
        _, available = self.expected()[key]
        # no record yet reads as 0, as for the CRM's users
        shown = [r.value for r in self.crm.levels.values() if r.key == key] or [
            LevelValue(Decimal(0), Decimal(0))
        ]
        assert len(shown) == 1 and shown[0].available in (available, available + held), (
            f"{key}: CRM available {shown[0].available}, ERP {available} "
            f"(shipped {held} at {moment}): counted twice"
        )

    def fail_snapshot_once(self) -> None:
        erp, real = self.erp, MemoryErp.reserved

        def failing() -> list[Reserved] | None:
            erp.reserved = lambda: real(erp)  # type: ignore[method-assign]
            raise TransientError("memory ERP: reserved snapshot failed (injected)")

        erp.reserved = failing  # type: ignore[method-assign]

    def shown(self, sku: str, warehouse: str) -> tuple[int, int, int]:
        """The CRM's one record of a key as whole numbers: real, available, blocked."""
        (value,) = [r.value for r in self.crm.levels.values() if r.key == (sku, warehouse)]
        figures = (value.real, value.available, value.reserved)
        assert all(f == int(f) for f in figures), figures
        return int(figures[0]), int(figures[1]), int(figures[2])

    def expected(self) -> dict[StockKey, tuple[Decimal, Decimal]]:
        on_hand = {r.stock_key: r.qty for r in self.erp.on_hand()}
        reserved = self.reserved()
        return {
            key: (on_hand.get(key, Decimal(0)), on_hand.get(key, Decimal(0)) - reserved.get(key, 0))
            for key in on_hand.keys() | reserved.keys()
        }

    def assert_crm_equals_erp(self, skip: set[StockKey] = frozenset()) -> None:  # type: ignore[assignment]
        shown: dict[StockKey, list[tuple[Decimal, Decimal]]] = {}
        for record in self.crm.levels.values():
            shown.setdefault(record.key, []).append((record.value.real, record.value.available))
        for key, (real, available) in self.expected().items():
            if key in skip:
                continue
            assert shown.get(key, [(Decimal(0), Decimal(0))]) == [(real, available)], key
        for key, values in shown.items():
            assert len(values) == 1, f"{key} has {len(values)} CRM records"
            if key not in skip and key not in self.expected():
                assert values == [(Decimal(0), Decimal(0))], key


@pytest.fixture
def worlds(store: StateStore, clock: Clock) -> Iterator[list[World]]:
    made: list[World] = []
    yield made
    for world in made:
        memory_source.REGISTRY.pop(world.name, None)
        memory_sink.REGISTRY.pop(world.name, None)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_crm_shows_the_erps_on_hand_reserved_and_available(
    ops: list[tuple[Any, ...]], store: StateStore, worlds: list[World]
) -> None:
    world = World(store, Clock())
    worlds.append(world)
    for op in ops:
        world.apply(op)
    # the end: the daemon's next cycles drain what failed, the nightly reconcile
    # (erp_wins) puts back what people edited
    for _ in range(3):
        world.cycle("ok")
    reconcile(world.pipeline, apply_changes=True)
    world.cycle("ok")
    assert not world.pipeline.store.outbox_rows(world.name)
    world.assert_crm_equals_erp()


@pytest.mark.parametrize(
    ("moment", "after_that_cycle"),
    [
        ("between_cycles", (50, 50, 0)),
        ("after_pull", (80, 80, 0)),
        ("after_snapshot", (80, 50, 30)),
    ],
)
def test_a_shipment_that_releases_its_reservation_is_never_counted_twice(
    store: StateStore, worlds: list[World], moment: str, after_that_cycle: tuple[int, int, int]
) -> None:
    """80 on hand, 30 reserved → available 50; the order ships (on hand 50, reserved 0).
    Whenever it ships, the CRM's available is 50 or, for one cycle, 80 — never 20 (the
    shipment and the reservation it released both subtracted); the next cycle shows 50."""
    world = World(store, Clock())
    worlds.append(world)
    world.move("A-100", "WH-MAIN", Decimal(80))
    world.erp.reserve("A-100", "WH-MAIN", 30)
    world.cycle("ok")
    assert world.shown("A-100", "WH-MAIN") == (80, 50, 30)
    if moment == "between_cycles":
        world.apply(("ship_reserved", ("A-100", "WH-MAIN")))
        world.cycle("ok")
    else:
        world.ship_during_cycle(StockKey("A-100", "WH-MAIN"), moment)
    assert world.shown("A-100", "WH-MAIN") == after_that_cycle
    world.cycle("ok")
    assert world.shown("A-100", "WH-MAIN") == (50, 50, 0)

"""Issue 13 item 6: the ledger keeps every quantity exactly as the ERP sends it.

A line with more decimals than the ledger keeps (``pipelines[].precision``, at
most the store's 6) is quarantined as a ``record_error``, never rounded; no
other path of the core rounds a stock quantity either.
"""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync.config import AlertSettings
from sync.ledger import LedgerOptions, apply_page, set_baseline, verify
from sync.model import (
    Cursor,
    Movement,
    MovementKind,
    Page,
    QuantityScaleError,
    StockKey,
    exact_units,
    qty_units,
)
from sync.pull import PullOptions, ensure_baseline, pull_all
from sync.push import Pusher, PushOptions
from sync.state import StateStore
from sync.state.scratch import SortedSpool
from tests.conftest import Clock

OPTIONS = PullOptions(page_size=10, overlap_s=120)
KEY = StockKey("A", "W1")


def _line(n: int, qty: str, clock: Clock, sku: str = "A") -> Movement:
    return Movement(
        f"memory:STK_MisDelivery:{n}:1",
        MovementKind.OTHER_IN,
        sku,
        "W1",
        Decimal(qty),
        clock.now,
        clock.now,
    )


def test_three_lines_of_0_005_make_0_015_in_ledger_and_crm(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    for n in range(3):
        erp.put(_line(n, "0.005", clock))
    pull_all(any_store, erp, pipeline, now=clock, options=OPTIONS)  # default precision: 6
    Pusher(any_store, crm, pipeline, now=clock, options=PushOptions()).run()
    assert any_store.levels(pipeline) == {KEY: Decimal("0.015")}
    assert crm.values() == {KEY: Decimal("0.015")}
    assert not any_store.conflicts(pipeline=pipeline, kind="record_error")


def test_with_precision_2_a_line_of_0_005_is_quarantined_not_rounded(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    page = Page(
        "moves",
        [_line(1, "0.005", clock), _line(2, "0.25", clock, sku="B")],
        Cursor(clock.now, "z"),
    )
    result = apply_page(
        any_store, pipeline, page, now=clock.now, options=LedgerOptions(precision=2)
    )
    assert (result.inserted, result.rejected) == (1, 1)
    # the page still commits: the good line counts and the cursor moves
    assert any_store.levels(pipeline) == {StockKey("B", "W1"): Decimal("0.25")}
    assert any_store.cursor(pipeline, "moves") == Cursor(clock.now, "z")
    [conflict] = any_store.conflicts(pipeline=pipeline, kind="record_error")
    assert conflict.ref == "memory:STK_MisDelivery:1:1"
    assert conflict.detail["field"] == "qty"
    assert conflict.detail["raw"]["qty"] == "0.005"
    assert "pipelines[].precision" in conflict.detail["reason"]
    assert "not rounded" in conflict.detail["reason"]
    assert any_store.movement(pipeline, "memory:STK_MisDelivery:1:1") is None


def test_seven_decimals_are_quarantined_at_the_store_precision(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    # another scale: 7 dp against the default 6, on a line that was stored before
    first = _line(1, "2.5", clock)
    apply_page(any_store, pipeline, Page("moves", [first], None), now=clock.now)
    edited = first._replace(qty=Decimal("2.5000001"), source_updated_at=clock.advance(60))
    result = apply_page(any_store, pipeline, Page("moves", [edited], None), now=clock.now)
    assert (result.updated, result.rejected) == (0, 1)
    assert any_store.levels(pipeline) == {KEY: Decimal("2.5")}  # the last exact figure stays
    [conflict] = any_store.conflicts(pipeline=pipeline, kind="record_error")
    assert "2.5000001" in conflict.detail["reason"]
    # trailing zeros are not extra decimals
    same = first._replace(qty=Decimal("2.500000000"), source_updated_at=clock.advance(60))
    again = apply_page(any_store, pipeline, Page("moves", [same], None), now=clock.now)
    assert (again.rejected, again.changed) == (0, 0)


def test_opening_keeps_sub_precision_quantities_exactly(store: StateStore, clock: Clock) -> None:
    erp = MemoryErp(now=clock)
    erp.set_opening("A", "W1", "0.000001")
    erp.set_opening("B", "W1", "12.345678")
    erp.put(_line(1, "0.005", clock))
    assert ensure_baseline(store, erp, "p", now=clock, options=OPTIONS)
    assert store.levels("p") == {
        KEY: Decimal("0.005001"),
        StockKey("B", "W1"): Decimal("12.345678"),
    }
    assert store.baselines("p")[KEY] == Decimal("0.000001")
    assert not verify(store, "p")


def test_an_opening_finer_than_the_precision_is_quarantined(
    store: StateStore, clock: Clock
) -> None:
    written = set_baseline(
        store,
        "p",
        {KEY: Decimal("0.015"), StockKey("B", "W1"): Decimal("3.25")},
        now=clock.now,
        precision=2,
    )
    assert written == {StockKey("B", "W1"): Decimal("3.25")}
    assert store.levels("p") == {StockKey("B", "W1"): Decimal("3.25")}
    [conflict] = store.conflicts(pipeline="p", kind="record_error")
    assert conflict.ref == "opening:A@W1"
    assert conflict.erp_qty == Decimal("0.015")
    assert "pipelines[].precision" in conflict.detail["reason"]


def test_conflicts_keep_figures_finer_than_micro_units_exactly(
    store: StateStore, clock: Clock
) -> None:
    with store.transaction() as tx:
        tx.record_conflict(
            kind="erp_ledger_drift",
            pipeline="p",
            ref="A@W1",
            now=clock.now,
            erp=Decimal("1.0000005"),
            ledger=Decimal("1"),
        )
    [conflict] = store.conflicts(pipeline="p")
    assert conflict.erp_qty is None and conflict.ledger_qty == 1
    assert conflict.detail["exact_qty"] == {"erp": "1.0000005"}


def test_reconcile_spool_sums_exactly() -> None:
    with SortedSpool() as spool:
        spool.add(
            [
                (KEY, Decimal("0.0000005"), None),
                (KEY, Decimal("0.0000005"), None),
                (KEY, Decimal("2.5"), None),
                (StockKey("B", "W1"), Decimal("0.1234567"), "x"),
            ]
        )
        assert list(spool.summed()) == [
            (KEY, Decimal("2.500001")),
            (StockKey("B", "W1"), Decimal("0.1234567")),
        ]
        assert list(spool.grouped())[1] == (StockKey("B", "W1"), [(Decimal("0.1234567"), "x")])


def test_no_conversion_rounds() -> None:
    assert qty_units(Decimal("0.015")) == 15_000
    assert qty_units(Decimal("-1.5"), 1) == -1_500_000
    assert exact_units(Decimal("0.015"), 2) is None
    assert exact_units(Decimal("NaN")) is None
    for qty, precision in ((Decimal("0.0000001"), 6), (Decimal("0.005"), 2), (Decimal("1.5"), 0)):
        with pytest.raises(QuantityScaleError):
            qty_units(qty, precision)
    with pytest.raises(ValueError, match="at most 6 decimal places"):
        AlertSettings(default_threshold=Decimal("0.0000001"))
    with pytest.raises(ValueError, match="at most 6 decimal places"):
        AlertSettings(thresholds={"A": Decimal("1.1234567")})


#: the one module allowed to round, and why: report.py shows quotients (a daily rate,
#: days of cover) and rounds a reorder suggestion up to whole units
ROUNDING_ALLOWED = {"sync/report.py"}
ROUNDING_CALLS = {"quantize", "round", "to_integral", "to_integral_value", "to_integral_exact"}


def test_no_core_module_rounds_a_quantity() -> None:
    root = Path(__file__).resolve().parent.parent
    found: set[tuple[str, str]] = set()
    for path in sorted([*root.glob("sync/**/*.py"), *root.glob("connectors/memory/*.py")]):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in ROUNDING_CALLS and rel not in ROUNDING_ALLOWED:
                found.add((rel, name))
    # model.exact_units checks integrality with to_integral_value (it never rounds a result);
    # health.py, freshness.py and daemon.py round seconds, not a quantity; the memory CRM
    # rounds what it shows to its own field precision, as a target that demands it does
    # (the sink's job)
    assert found == {
        ("sync/service/health.py", "round"),
        ("sync/freshness.py", "round"),
        ("sync/service/daemon.py", "round"),  # seconds until the state database is tried again
        ("sync/cli/status.py", "round"),  # a replica's heartbeat age in seconds
        ("sync/model.py", "to_integral_value"),
        ("connectors/memory/sink.py", "quantize"),
        # a forecast is a float estimate, not a ledger figure: shown to two decimals
        ("sync/forecast/rows.py", "round"),
        ("sync/cli/forecast.py", "round"),  # a backtest's MASE, to three decimals
    }, found

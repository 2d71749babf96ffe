"""CLI: report (stock cover) and conflicts list/show/resolve on a file-backed memory pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.demand import Outflows
from sync.model import LevelValue, Movement, MovementKind, StockKey
from sync.report import cover_rows
from sync.runtime import build_pipeline, open_store, run_cycle
from tests.reconcile.conftest import cli, memory_yaml

NAME = "clitest"


World = tuple[Path, MemoryErp, MemoryCrm]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A pipeline whose ledger holds 30 days of shipments, synced once."""
    yield from _world(tmp_path)


def _world(tmp_path: Path, alerts: str = "", push: str = "", reserve: int = 0) -> Iterator[World]:
    """The world above; ``reserve`` units of A@W1 reserved in the ERP before the cycle."""
    extra = f"    alerts: {{thresholds: {{A: 20}}, lead_time_days: 10{alerts}}}\n" + push
    path = tmp_path / "stocksync.yaml"
    path.write_text(memory_yaml(NAME, extra, f"sqlite:///{tmp_path / 'state.db'}"))
    erp, crm = MemoryErp(), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    now = datetime.now(UTC)
    erp.set_opening("A", "W1", 400)
    erp.set_opening("B", "W1", 5)
    for day in range(30):  # 3 a day of A shipped over the last 30 days
        at = now - timedelta(days=day, hours=1)
        erp.put(Movement(f"m:s:{day}:1", MovementKind.SHIPMENT, "A", "W1", Decimal(-3), at, at))
    erp.reserve("A", "W1", reserve)
    settings = cfg.load(path)
    store = open_store(settings)
    pipeline = build_pipeline(settings.pipeline(NAME), store)
    run_cycle(pipeline)
    yield path, erp, crm
    store.close()
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)


def test_cover_rows_arithmetic() -> None:
    a, b = StockKey("A", "W"), StockKey("B", "W")
    rows = cover_rows(
        {a: _on_hand(30), b: _on_hand(4)},
        {a: _shipped(60)},
        days=30,
        lead_time_days=Decimal(7),
        safety={a: Decimal(5)},
    )
    assert [(r.daily_rate, r.days_of_cover, r.reorder_qty) for r in rows] == [
        (Decimal(2), Decimal(15), Decimal(0)),  # 2/day × 7 + 5 − 30 < 0
        (Decimal(0), None, Decimal(0)),  # nothing went out: infinite cover
    ]
    low = cover_rows(
        {a: _on_hand(3)}, {a: _shipped(60)}, days=30, lead_time_days=Decimal(7), safety={}
    )
    assert low[0].reorder_qty == Decimal(11) and low[0].days_of_cover == Decimal("1.5")


def _shipped(qty: int) -> Outflows:
    return Outflows(shipments=Decimal(qty))


def _on_hand(qty: int, reserved: int = 0) -> LevelValue:
    return LevelValue(real=Decimal(qty), available=Decimal(qty - reserved))


def test_cover_rows_on_the_available_basis() -> None:
    a, b = StockKey("A", "W"), StockKey("B", "W")
    levels = {a: _on_hand(30, reserved=26), b: _on_hand(4, reserved=10)}
    kw = {"days": 30, "lead_time_days": Decimal(7), "safety": {a: Decimal(5)}}
    rows = cover_rows(levels, {a: _shipped(60), b: _shipped(30)}, basis="available", **kw)
    # A: 4 available at 2/day = 2 days; reorder 2 × 7 + 5 − 4 = 15
    # B: reservations over stock, available −6: no cover at all; reorder 1 × 7 − (−6) = 13
    assert [(r.on_hand, r.reserved, r.available, r.days_of_cover, r.reorder_qty) for r in rows] == [
        (Decimal(30), Decimal(26), Decimal(4), Decimal(2), Decimal(15)),
        (Decimal(4), Decimal(10), Decimal(-6), Decimal(0), Decimal(13)),
    ]
    on_hand = cover_rows(levels, {a: _shipped(60), b: _shipped(30)}, **kw)  # default basis
    assert [(r.basis, r.days_of_cover, r.reorder_qty) for r in on_hand] == [
        ("on_hand", Decimal(15), Decimal(0)),
        ("on_hand", Decimal(4), Decimal(3)),
    ]


def test_report_json(world: tuple[Path, MemoryErp, MemoryCrm]) -> None:
    path, _, _ = world
    code, out = cli("report", "-c", str(path), "--days", "30", "--format", "json")
    assert code == 0, out
    rows = {r["sku"]: r for r in json.loads(out)}
    assert rows["A"] == {
        "pipeline": NAME,
        "sku": "A",
        "warehouse": "W1",
        "on_hand": "310",
        "reserved": "0",
        "available": "310",
        "basis": "on_hand",
        "demand": "90",
        "daily_rate": "3.0000",
        "days_of_cover": "103.3",
        "shipments": "90",
        "customer_returns": "0",
        "transfers_out": "0",
        "supplier_returns": "0",
        "count_losses": "0",
        "other_out": "0",
        "safety_stock": "20",
        "reorder_qty": "0",
        "days": 30,
    }
    assert rows["B"]["days_of_cover"] is None and rows["B"]["daily_rate"] == "0.0000"
    code, out = cli("report", "-c", str(path), "--days", "10", "--format", "json")
    a = next(r for r in json.loads(out) if r["sku"] == "A")
    assert (a["demand"], a["daily_rate"]) == ("30", "3.0000")  # the same pace
    code, out = cli("report", "-c", str(path))
    assert code == 0 and "stock cover" in out


def test_report_reserved_available_and_basis(tmp_path: Path) -> None:
    # ERP reserves 250 of A@W1, the config 50 more: 310 on hand, 300 reserved, 10 available
    push = "    push: {reservations: {A@W1: 50}}\n"
    for path, _, _ in _world(tmp_path, push=push, reserve=250):
        code, out = cli("report", "-c", str(path), "--days", "30", "--format", "json")
        assert code == 0, out
        a = next(r for r in json.loads(out) if r["sku"] == "A")
        assert (a["on_hand"], a["reserved"], a["available"]) == ("310", "300", "10")
        # alerts.basis defaults to on_hand: 310 / 3 a day; reorder 3 × 10 + 20 − 310 < 0
        assert (a["basis"], a["days_of_cover"], a["reorder_qty"]) == ("on_hand", "103.3", "0")
        code, out = cli("report", "-c", str(path), "--basis", "available", "--format", "csv")
        assert code == 0, out
        header, *lines = out.splitlines()
        assert header.split(",")[3:7] == ["on_hand", "reserved", "available", "basis"]
        row = dict(zip(header.split(","), next(x for x in lines if ",A,").split(","), strict=True))
        # 10 / 3 a day = 3.3 days; reorder 3 × 10 + 20 − 10 = 40
        assert (row["basis"], row["days_of_cover"], row["reorder_qty"]) == (
            "available",
            "3.3",
            "40",
        )
        code, out = cli("report", "-c", str(path), "--basis", "nonsense")
        assert code == 2


def test_report_uses_the_configured_basis_and_the_option_overrides_it(tmp_path: Path) -> None:
    for path, _, _ in _world(tmp_path, alerts=", basis: available", reserve=400):
        code, out = cli("report", "-c", str(path), "--days", "30", "--format", "json")
        assert code == 0, out
        a = next(r for r in json.loads(out) if r["sku"] == "A")
        # reservations over stock: available −90 shown as is, no cover, reorder 30 + 20 + 90
        assert (a["reserved"], a["available"], a["basis"]) == ("400", "-90", "available")
        assert (a["days_of_cover"], a["reorder_qty"]) == ("0", "140")
        code, out = cli("report", "-c", str(path), "--basis", "on_hand", "--format", "json")
        a = next(r for r in json.loads(out) if r["sku"] == "A")
        assert (a["basis"], a["days_of_cover"], a["reorder_qty"]) == ("on_hand", "103.3", "0")


def test_conflicts_list_show_resolve(world: tuple[Path, MemoryErp, MemoryCrm]) -> None:
    path, _, crm = world
    crm.set_value(StockKey("B", "W1"), Decimal(77))
    for _ in range(2):  # re-detection updates the open conflict, no duplicate
        code, _ = cli("reconcile", "-c", str(path))
        assert code == 1
    code, out = cli("conflicts", "list", "-c", str(path), "--open", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["ref"], row["crm"], row["pushed"], row["occurrences"]) == (
        "crm_modified",
        "B@W1",
        "77",
        "5",
        2,
    )
    code, out = cli("conflicts", "list", "-c", str(path), "--kind", "orphan_in_crm")
    assert code == 0 and "none" in out

    code, out = cli("conflicts", "show", str(row["id"]), "-c", str(path), "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["detail"]["action"] == "overwrite" and shown["erp"] == "5"
    code, out = cli("conflicts", "show", str(row["id"]), "-c", str(path))
    assert code == 0 and "kind: crm_modified" in out

    code, out = cli("conflicts", "resolve", str(row["id"]), "-c", str(path), "--note", "known")
    assert code == 0
    code, out = cli("conflicts", "list", "-c", str(path), "--open", "--format", "json")
    assert json.loads(out) == []
    code, out = cli("conflicts", "show", str(row["id"]), "-c", str(path), "--format", "json")
    assert json.loads(out)["resolution"] == "manual" and json.loads(out)["note"] == "known"
    code, _ = cli("conflicts", "resolve", str(row["id"]), "-c", str(path), "--note", "again")
    assert code == 2
    code, _ = cli("conflicts", "show", "9999", "-c", str(path))
    assert code == 2


def test_reconcile_only_filter_and_apply(world: tuple[Path, MemoryErp, MemoryCrm]) -> None:
    path, _, crm = world
    crm.set_value(StockKey("B", "W1"), Decimal(77))
    # --only: the rows and the exit status speak of that kind alone
    code, out = cli("reconcile", "-c", str(path), "--only", "orphan_in_crm", "--format", "json")
    assert code == 0 and json.loads(out) == []
    code, out = cli("reconcile", "-c", str(path), "--only", "crm_modified", "--format", "json")
    assert code == 1 and [r["kind"] for r in json.loads(out)] == ["crm_modified"]
    code, out = cli("reconcile", "-c", str(path), "--only", "orphan_in_crm", "--format", "csv")
    assert code == 0 and out.splitlines() == [
        "pipeline,kind,sku,warehouse,erp,ledger,crm,pushed,crm_id,duplicates,action"
    ]
    code, _ = cli("reconcile", "-c", str(path), "--only", "bogus")
    assert code == 2
    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "csv")
    lines = out.splitlines()
    assert code == 0 and lines[0].endswith(",action,applied")
    assert lines[1].startswith("clitest,crm_modified,B,W1,") and lines[1].endswith(
        ",overwrite,true"
    )
    assert crm.values()[StockKey("B", "W1")] == Decimal(5)


def test_alerts_list(world: tuple[Path, MemoryErp, MemoryCrm]) -> None:
    path, erp, _ = world
    code, out = cli("alerts", "list", "-c", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == []
    now = datetime.now(UTC)
    erp.put(Movement("m:s:big:1", MovementKind.SHIPMENT, "A", "W1", Decimal(-300), now, now))
    code, _ = cli("once", "-c", str(path))
    assert code == 0
    code, out = cli("alerts", "list", "-c", str(path), "--format", "json")
    rows = json.loads(out)
    assert [(r["sku"], r["qty"], r["threshold"]) for r in rows] == [("A", "10", "20")]


def test_reconcile_apply_reports_a_push_that_died_as_not_applied(
    world: tuple[Path, MemoryErp, MemoryCrm],
) -> None:
    path, _, crm = world
    crm.set_value(StockKey("B", "W1"), Decimal(77))
    crm.set_value(StockKey("A", "W1"), Decimal(66))
    crm.faults.append(("update_level", "reject"))  # the first overwrite (A) dies
    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "json")
    rows = {r["sku"]: r for r in json.loads(out)}
    assert code == 1  # A is still different
    assert (rows["A"]["action"], rows["A"]["applied"]) == ("overwrite", False)
    assert (rows["B"]["action"], rows["B"]["applied"]) == ("overwrite", True)
    assert crm.values() == {StockKey("A", "W1"): Decimal(66), StockKey("B", "W1"): Decimal(5)}
    code, out = cli("conflicts", "list", "-c", str(path), "--open", "--format", "json")
    assert [(c["kind"], c["ref"], c["resolution"]) for c in json.loads(out)] == [
        ("crm_modified", "A@W1", None)
    ]
    code, out = cli("status", "-c", str(path), "--format", "json")
    (stuck,) = json.loads(out)["stuck"]
    assert (stuck["key"], stuck["state"]) == ("A@W1", "dead")


def test_reconcile_apply_reports_a_push_left_for_a_retry_as_not_applied(
    world: tuple[Path, MemoryErp, MemoryCrm],
) -> None:
    path, _, crm = world
    crm.set_value(StockKey("B", "W1"), Decimal(77))
    crm.faults.append(("update_level", "fail"))  # transient: retried in a later cycle
    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "csv")
    assert code == 1
    header, row = out.splitlines()
    assert header.endswith(",action,applied") and row.endswith(",overwrite,false")
    assert crm.values()[StockKey("B", "W1")] == Decimal(77)
    code, out = cli("status", "-c", str(path), "--format", "json")
    status = json.loads(out)
    assert status["stuck"] == [] and status["outbox"]["clitest"]["pending"] == 1


def test_once_exits_1_while_a_dead_or_blocked_row_exists(
    world: tuple[Path, MemoryErp, MemoryCrm],
) -> None:
    path, erp, crm = world
    now = datetime.now(UTC)
    erp.put(Movement("m:r:1:1", MovementKind.RECEIPT, "A", "W1", Decimal(1), now, now))
    crm.faults.append(("update_level", "reject"))
    code, out = cli("once", "-c", str(path))
    assert code == 1 and "dead 1" in out and "1 dead and 0 blocked" in out
    code, out = cli("once", "-c", str(path))  # nothing new: the dead row is still there
    assert code == 1 and "dead 0" in out and "1 dead and 0 blocked" in out
    code, out = cli("retry", "--all", "-c", str(path))
    assert code == 0
    code, out = cli("once", "-c", str(path))
    assert code == 0 and crm.values()[StockKey("A", "W1")] == Decimal(311)

    crm.skus = {"A", "B"}  # a product the CRM does not know
    erp.put(Movement("m:r:2:1", MovementKind.RECEIPT, "Z", "W1", Decimal(4), now, now))
    for _ in range(2):
        code, out = cli("once", "-c", str(path))
        assert code == 1 and "0 dead and 1 blocked" in out

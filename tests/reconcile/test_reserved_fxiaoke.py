"""Reconcile of blocked and available stock against the Fxiaoke emulator on loopback,
with the memory ERP (which reports reservations) and the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_fxiaoke
from connectors.memory import source as memory_source
from connectors.memory.source import MemoryErp
from tests.reconcile.conftest import cli

NAME = "main"
World = tuple[Path, MemoryErp, FxiaokeEmulator]


def figures(fx: FxiaokeEmulator, sku: str) -> tuple[str, Decimal, Decimal, Decimal]:
    """(id, real, available, blocked) of the one StockObj of ``sku``."""
    codes = {r["_id"]: r["product_code"] for r in fx.records("ProductObj")}
    (rec,) = [r for r in fx.stock_records() if codes[r["product_id"]] == sku]
    numbers = (Decimal(str(rec[f])) for f in ("real_stock", "available_stock", "blocked_stock"))
    return (str(rec["_id"]), *numbers)


def world_for(tmp_path: Path, erp: MemoryErp) -> Iterator[World]:
    erp.set_opening("SKU-0001", "WH-MAIN", 100)
    erp.set_opening("SKU-0002", "WH-MAIN", 50)
    erp.reserve("SKU-0001", "WH-MAIN", "12.5")
    memory_source.REGISTRY[NAME] = erp
    fx = build_fxiaoke("demo")
    try:
        with LoopbackServer(fx) as server:
            config = {
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
                "pipelines": [
                    {
                        "name": NAME,
                        "erp": {"type": "memory"},
                        "crm": fx.crm_settings(server.url),
                        "pull": {"overlap_s": 0},
                    }
                ],
            }
            path = tmp_path / "stocksync.yaml"
            path.write_text(json.dumps(config))  # JSON is YAML
            code, out = cli("once", "-c", str(path))
            assert code == 0, out
            yield path, erp, fx
    finally:
        memory_source.REGISTRY.pop(NAME, None)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from world_for(tmp_path, MemoryErp())


def set_field(fx: FxiaokeEmulator, sku: str, field: str, value: str) -> None:
    """A person edits one number of the StockObj in the CRM."""
    fx.store.update("StockObj", {"_id": figures(fx, sku)[0], field: value})


def reconcile_rows(path: Path, *args: str) -> tuple[int, list[dict[str, object]]]:
    code, out = cli("reconcile", "-c", str(path), "--format", "json", *args)
    return code, json.loads(out)


def test_the_cycle_writes_all_three_figures_and_reconcile_agrees(world: World) -> None:
    path, _, fx = world
    assert figures(fx, "SKU-0001")[1:] == (Decimal(100), Decimal("87.5"), Decimal("12.5"))
    assert figures(fx, "SKU-0002")[1:] == (Decimal(50), Decimal(50), Decimal(0))
    assert reconcile_rows(path) == (0, [])


def test_blocked_stock_edited_alone_is_found_and_overwritten(world: World) -> None:
    path, _, fx = world
    set_field(fx, "SKU-0001", "blocked_stock", "3")

    code, rows = reconcile_rows(path)
    assert code == 1
    assert [(r["kind"], r["sku"], r["erp"], r["ledger"], r["crm"], r["action"]) for r in rows] == [
        ("crm_reserved_modified", "SKU-0001", "12.5", "12.5", "3", "overwrite")
    ]
    assert figures(fx, "SKU-0001")[3] == Decimal(3)  # the dry run wrote nothing

    code, rows = reconcile_rows(path, "--apply")
    assert code == 0 and [r["applied"] for r in rows] == [True]
    assert figures(fx, "SKU-0001")[1:] == (Decimal(100), Decimal("87.5"), Decimal("12.5"))
    assert reconcile_rows(path) == (0, [])


def test_available_stock_edited_alone_is_found_and_overwritten(world: World) -> None:
    path, _, fx = world
    set_field(fx, "SKU-0002", "available_stock", "40")

    code, rows = reconcile_rows(path)
    assert code == 1
    assert [(r["kind"], r["sku"], r["ledger"], r["crm"], r["pushed"]) for r in rows] == [
        ("crm_available_modified", "SKU-0002", "50", "40", "50")
    ]
    code, rows = reconcile_rows(path, "--apply")
    assert code == 0 and [r["applied"] for r in rows] == [True]
    assert figures(fx, "SKU-0002")[1:] == (Decimal(50), Decimal(50), Decimal(0))


def test_an_erp_reservation_after_the_cycle_is_caught_up_and_pushed_by_the_next(
    world: World,
) -> None:
    """Reconcile catches reserved stock up as a cycle does: no conflict, and the next
    cycle (``stocksync once``) writes the three figures."""
    path, erp, fx = world
    erp.reserve("SKU-0002", "WH-MAIN", "7.25")

    assert reconcile_rows(path) == (0, [])
    assert figures(fx, "SKU-0002")[1:] == (Decimal(50), Decimal(50), Decimal(0))
    code, _ = cli("once", "-c", str(path))
    assert code == 0
    assert figures(fx, "SKU-0002")[1:] == (Decimal(50), Decimal("42.75"), Decimal("7.25"))
    assert reconcile_rows(path) == (0, [])


def test_only_speaks_of_the_kind_asked_for(world: World) -> None:
    """--only: rows and exit status per kind, as for the on-hand kinds."""
    path, _, fx = world
    set_field(fx, "SKU-0001", "blocked_stock", "3")
    set_field(fx, "SKU-0002", "real_stock", "49")

    code, rows = reconcile_rows(path, "--only", "crm_reserved_modified")
    assert code == 1 and [(r["kind"], r["sku"]) for r in rows] == [
        ("crm_reserved_modified", "SKU-0001")
    ]
    assert reconcile_rows(path, "--only", "crm_available_modified") == (0, [])
    assert reconcile_rows(path, "--only", "reserved_drift") == (0, [])
    code, rows = reconcile_rows(path, "--only", "crm_modified")
    assert code == 1 and [r["sku"] for r in rows] == ["SKU-0002"]
    config = json.loads(path.read_text())
    config["pipelines"][0]["reconcile"] = {"crm_reserved_modified": "report_only"}
    path.write_text(json.dumps(config))
    code, rows = reconcile_rows(path, "--apply", "--only", "crm_reserved_modified")
    assert code == 1 and [(r["action"], r["applied"]) for r in rows] == [("none", False)]
    assert figures(fx, "SKU-0001")[3] == Decimal(3)
    assert figures(fx, "SKU-0002")[1] == Decimal(50)  # crm_modified still erp_wins
    code, _ = cli("reconcile", "-c", str(path), "--only", "reserved")
    assert code == 2


@pytest.fixture
def keeps_none(tmp_path: Path) -> Iterator[World]:
    yield from world_for(tmp_path, MemoryErp(reservations=False))


def test_an_erp_that_keeps_none_shows_available_as_on_hand(keeps_none: World) -> None:
    path, _, fx = keeps_none
    assert figures(fx, "SKU-0001")[1:] == (Decimal(100), Decimal(100), Decimal(0))
    assert reconcile_rows(path) == (0, [])
    set_field(fx, "SKU-0001", "available_stock", "87.5")
    code, rows = reconcile_rows(path, "--apply")
    assert code == 0
    assert [(r["kind"], r["ledger"], r["crm"]) for r in rows] == [
        ("crm_available_modified", "100", "87.5")
    ]
    assert figures(fx, "SKU-0001")[1:] == (Decimal(100), Decimal(100), Decimal(0))

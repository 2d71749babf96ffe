"""Reconcile end to end: K/3 Cloud and Fxiaoke emulators on loopback, the real CLI.

Someone edits a StockObj by hand in the CRM and someone deletes an approved
outbound bill in the ERP: the dry run reports exactly those two (exit 1),
``--apply`` fixes them, and a second dry run is clean (exit 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_fxiaoke
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.emulator import build_emulator as build_k3cloud
from tests.reconcile.conftest import cli


def stock_by_sku(fx: FxiaokeEmulator) -> dict[str, tuple[str, Decimal]]:
    codes = {r["_id"]: r["product_code"] for r in fx.records("ProductObj")}
    return {
        codes[r["product_id"]]: (r["_id"], Decimal(str(r["real_stock"])))
        for r in fx.stock_records()
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, K3CloudEmulator, FxiaokeEmulator, int]]:
    k3 = build_k3cloud()
    k3.set_opening("SKU-0001", "WH-MAIN", 100)
    k3.set_opening("SKU-0002", "WH-MAIN", 50)
    receipt = k3.create_document(
        "STK_InStock", [{"material": "SKU-0001", "qty": "10", "stock": "WH-MAIN"}]
    )
    k3.audit("STK_InStock", receipt)
    shipment = k3.create_document(
        "SAL_OUTSTOCK", [{"material": "SKU-0002", "qty": "5", "stock": "WH-MAIN"}]
    )
    k3.audit("SAL_OUTSTOCK", shipment)
    fx = build_fxiaoke("demo")
    with LoopbackServer(k3) as k3_server, LoopbackServer(fx) as fx_server:
        erp: dict[str, Any] = k3.connection_info(k3_server.url)
        crm: dict[str, Any] = fx.connection_info(fx_server.url)
        config = {
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
            "pipelines": [
                {
                    "name": "main",
                    "erp": {
                        "type": "k3cloud",
                        "server_url": erp["url"],
                        "acct_id": erp["acct_id"],
                        "username": erp["username"],
                        "app_id": erp["app_id"],
                        "app_secret": erp["app_secret"],
                    },
                    "crm": {"type": "fxiaoke", **{k: crm[k] for k in crm if k != "url"}},
                }
            ],
        }
        config["pipelines"][0]["crm"]["base_url"] = crm["url"]
        path = tmp_path / "stocksync.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        yield path, k3, fx, shipment


def test_dry_run_reports_the_two_edits_apply_fixes_them(
    world: tuple[Path, K3CloudEmulator, FxiaokeEmulator, int],
) -> None:
    path, k3, fx, shipment = world
    code, _ = cli("once", "-c", str(path))
    assert code == 0
    stock = stock_by_sku(fx)
    assert {k: v for k, (_, v) in stock.items()} == {"SKU-0001": 110, "SKU-0002": 45}

    fx.store.update("StockObj", {"_id": stock["SKU-0001"][0], "real_stock": "999"})
    k3.delete("SAL_OUTSTOCK", shipment)

    code, out = cli("reconcile", "-c", str(path), "--format", "json")
    assert code == 1, out
    found = {(r["kind"], r["sku"]): r for r in json.loads(out)}
    assert set(found) == {("crm_modified", "SKU-0001"), ("erp_ledger_drift", "SKU-0002")}
    assert found[("crm_modified", "SKU-0001")]["crm"] == "999"
    drift = found[("erp_ledger_drift", "SKU-0002")]
    assert (drift["erp"], drift["ledger"], drift["action"]) == ("50", "45", "adjust")
    assert {k: v for k, (_, v) in stock_by_sku(fx).items()}["SKU-0001"] == 999  # untouched

    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "json")
    assert code == 0, out
    assert all(r["applied"] for r in json.loads(out))
    assert {k: v for k, (_, v) in stock_by_sku(fx).items()} == {"SKU-0001": 110, "SKU-0002": 50}

    code, out = cli("reconcile", "-c", str(path))
    assert code == 0, out
    code, out = cli("conflicts", "list", "-c", str(path), "--open", "--format", "json")
    assert code == 0 and json.loads(out) == []


def _add_stock(fx: FxiaokeEmulator, like: str, qty: str) -> str:
    """Someone creates a second StockObj for the product × warehouse of record ``like``."""
    model = fx.store.get("StockObj", like)
    fields = {k: model[k] for k in ("product_id", "warehouse_id")}
    numbers = {"real_stock": qty, "available_stock": qty, "blocked_stock": "0"}
    return str(fx.store.create("StockObj", {**fields, **numbers})["_id"])


def _use_policy(path: Path, policy: str) -> None:
    config = json.loads(path.read_text())
    config["pipelines"][0]["reconcile"] = {"duplicate_in_crm": policy}
    path.write_text(json.dumps(config))


def test_duplicate_stock_records_are_reported_then_invalidated(
    world: tuple[Path, K3CloudEmulator, FxiaokeEmulator, int],
) -> None:
    path, _, fx, _ = world
    code, _ = cli("once", "-c", str(path))
    assert code == 0
    bound, _ = stock_by_sku(fx)["SKU-0001"]
    extra = _add_stock(fx, bound, "7")

    code, out = cli("reconcile", "-c", str(path), "--format", "json")
    assert code == 1, out
    (row,) = json.loads(out)
    assert (row["kind"], row["sku"], row["crm"], row["ledger"], row["action"]) == (
        "duplicate_in_crm",
        "SKU-0001",
        "110",
        "110",
        "none",
    )
    assert row["crm_id"] == bound and row["duplicates"] == [{"crm_id": extra, "crm": "7"}]
    code, out = cli("reconcile", "-c", str(path), "--format", "csv")
    header, line = out.splitlines()
    assert header.endswith(",pushed,crm_id,duplicates,action")
    assert f",{bound},{extra}=7,none" in line
    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "json")
    assert code == 1 and json.loads(out)[0]["applied"] is False  # report_only by default
    assert len(fx.stock_records()) == 3

    _use_policy(path, "invalidate_extras")
    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "json")
    assert code == 0, out
    (row,) = json.loads(out)
    assert (row["kind"], row["action"], row["applied"]) == ("duplicate_in_crm", "invalidate", True)
    assert stock_by_sku(fx)["SKU-0001"] == (bound, Decimal(110))
    (gone,) = [r for r in fx.records("StockObj", include_invalid=True) if r["_id"] == extra]
    assert gone["life_status"] == "invalid"
    code, out = cli("reconcile", "-c", str(path))
    assert code == 0, out
    code, out = cli(
        "conflicts", "list", "-c", str(path), "--kind", "duplicate_in_crm", "--format", "json"
    )
    (conflict,) = json.loads(out)
    assert (conflict["ref"], conflict["resolution"]) == ("SKU-0001@WH-MAIN", "invalidated")


def test_three_records_for_one_key_keep_the_bound_one(
    world: tuple[Path, K3CloudEmulator, FxiaokeEmulator, int],
) -> None:
    path, _, fx, _ = world
    _use_policy(path, "invalidate_extras")
    code, _ = cli("once", "-c", str(path))
    assert code == 0
    bound, _ = stock_by_sku(fx)["SKU-0002"]
    extras = [_add_stock(fx, bound, "45"), _add_stock(fx, bound, "3")]
    fx.store.update("StockObj", {"_id": bound, "real_stock": "44"})  # and the bound one edited
    code, out = cli("reconcile", "-c", str(path), "--apply", "--format", "json")
    assert code == 0, out
    found = {r["kind"]: r for r in json.loads(out)}
    assert set(found) == {"duplicate_in_crm", "crm_modified"}
    assert [d["crm_id"] for d in found["duplicate_in_crm"]["duplicates"]] == extras
    assert all(r["applied"] for r in found.values())
    live = [r for r in fx.stock_records() if r["_id"] in {bound, *extras}]
    assert [(r["_id"], Decimal(str(r["real_stock"]))) for r in live] == [(bound, Decimal(45))]

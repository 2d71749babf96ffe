"""Stock organisations: each side of a transfer is in scope by its own org (k3cloud.md §4:
FStockOutOrgId = 调出, FStockOrgId = 调入), in the query, the decoder and on-hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.mapping import decode_row
from connectors.k3cloud.source import K3CloudSource
from connectors.k3cloud.streams import STREAMS, configured, field_keys
from sync.model import Movement
from tests.k3cloud.test_emulator import envelope_of, post

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def two_orgs(emulator: K3CloudEmulator) -> int:
    """CK001 (org 100) holds 51; 20 go to CK002 (org 200). Also a receipt in each org."""
    emulator.set_warehouse_org("CK001", "100")
    emulator.set_warehouse_org("CK002", "200")
    emulator.set_opening("A-100", "CK001", 51)
    fid = emulator.create_document(
        "STK_TransferDirect",
        [{"material": "A-100", "qty": "20", "src_stock": "CK001", "dest_stock": "CK002"}],
    )
    emulator.audit("STK_TransferDirect", fid)
    for stock in ("CK001", "CK002"):
        receipt = emulator.create_document(
            "STK_InStock", [{"material": "B-200", "qty": "5", "stock": stock}]
        )
        emulator.audit("STK_InStock", receipt)
    return fid


def levels(source: K3CloudSource) -> dict[tuple[str, str], Decimal]:
    """The active movements of every stream, folded per key (no opening stock)."""
    totals: dict[tuple[str, str], Decimal] = {}
    for stream in source.streams():
        for page in source.pull(stream, None, 10):
            assert page.rejects == []
            for movement in page.movements:
                if movement.active:
                    key = (movement.sku, movement.warehouse)
                    totals[key] = totals.get(key, Decimal(0)) + movement.qty
    return totals


def transfer_sides(source: K3CloudSource) -> dict[str, Movement]:
    return {m.warehouse: m for p in source.pull("transfer", None, 10) for m in p.movements}


def test_emulator_transfers_carry_both_orgs_and_inventory_splits_by_org(
    emulator: K3CloudEmulator, two_orgs: int
) -> None:
    query = {
        "FormId": "STK_TransferDirect",
        "FieldKeys": "FStockOutOrgId.FNumber,FStockOrgId.FNumber,FSrcStockId.FNumber",
    }
    assert post(emulator, "ExecuteBillQuery", {"data": query}) == [["100", "200", "CK001"]]
    stock = {
        "FormId": "STK_Inventory",
        "FieldKeys": "FStockOrgId.FNumber,FStockId.FNumber,FMaterialId.FNumber,FBaseQty",
        "FilterString": "FMaterialId.FNumber = 'A-100'",
        "OrderString": "FStockId.FNumber ASC",
    }
    assert post(emulator, "ExecuteBillQuery", {"data": stock}) == [
        ["100", "CK001", "A-100", 31],
        ["200", "CK002", "A-100", 20],
    ]
    # only a transfer has a sending org
    other = {"FormId": "STK_InStock", "FieldKeys": "FStockOutOrgId.FNumber"}
    assert envelope_of(post(emulator, "ExecuteBillQuery", {"data": other}))["MsgCode"] == 9


def test_org_100_counts_the_out_side_only(
    two_orgs: int, make_source: Callable[..., K3CloudSource]
) -> None:
    source = make_source(stock_orgs=["100"])
    sides = transfer_sides(source)
    assert sides["CK001"].active and sides["CK001"].qty == Decimal(-20)
    assert not sides["CK002"].active  # kept inactive: an edit back into scope must count
    assert levels(source) == {("A-100", "CK001"): Decimal(-20), ("B-200", "CK001"): Decimal(5)}
    on_hand = {(r.sku, r.warehouse): r.qty for r in source.on_hand()}
    assert on_hand == {("A-100", "CK001"): Decimal(31), ("B-200", "CK001"): Decimal(5)}


def test_org_200_counts_the_in_side_only(
    two_orgs: int, make_source: Callable[..., K3CloudSource]
) -> None:
    source = make_source(stock_orgs=["200"])
    sides = transfer_sides(source)
    assert not sides["CK001"].active
    assert sides["CK002"].active and sides["CK002"].qty == Decimal(20)
    assert levels(source) == {("A-100", "CK002"): Decimal(20), ("B-200", "CK002"): Decimal(5)}
    on_hand = {(r.sku, r.warehouse): r.qty for r in source.on_hand()}
    assert on_hand == {("A-100", "CK002"): Decimal(20), ("B-200", "CK002"): Decimal(5)}


@pytest.mark.parametrize("orgs", [["100", "200"], []])
def test_both_orgs_or_no_filter_count_both_sides(
    two_orgs: int, make_source: Callable[..., K3CloudSource], orgs: list[str]
) -> None:
    source = make_source(stock_orgs=orgs)
    assert levels(source) == {
        ("A-100", "CK001"): Decimal(-20),
        ("A-100", "CK002"): Decimal(20),
        ("B-200", "CK001"): Decimal(5),
        ("B-200", "CK002"): Decimal(5),
    }


def test_a_transfer_within_another_org_is_not_read(
    emulator: K3CloudEmulator, two_orgs: int, make_source: Callable[..., K3CloudSource]
) -> None:
    emulator.set_warehouse_org("CK003", "200")
    inner = emulator.create_document(
        "STK_TransferDirect",
        [{"material": "A-100", "qty": "1", "src_stock": "CK002", "dest_stock": "CK003"}],
    )
    emulator.audit("STK_TransferDirect", inner)
    source = make_source(stock_orgs=["100"])
    pulled = [m.key for p in source.pull("transfer", None, 10) for m in p.movements]
    assert pulled and not any(f":{inner}:" in key for key in pulled)
    # the window rescan lists every key the ERP has, whatever its org: none the pull
    # yields looks vanished, and neither does a document that left the orgs in scope
    window = set(source.keys_in_window("transfer", datetime(2000, 1, 1, tzinfo=TZ)))
    assert set(pulled) <= window and any(f":{inner}:" in key for key in window)


def test_decoder_checks_each_side_against_its_own_org() -> None:
    defn = configured(STREAMS["transfer"], org_scoped=True)
    keys = field_keys(defn)
    assert keys[8:12] == [
        "FSrcStockId.FNumber",
        "FDestStockId.FNumber",
        "FStockOutOrgId.FNumber",
        "FStockOrgId.FNumber",
    ]
    row = [1, "T1", "2024-05-01T00:00:00", "C", "A", "2024-05-01T10:00:00", 7, "A-100"]
    row += ["CK001", "CK002", "100", "200", Decimal(20)]
    out, into = decode_row(defn, row, TZ, orgs=frozenset({"200"}))
    assert (out.active, into.active) == (False, True)
    out, into = decode_row(defn, row, TZ, orgs=frozenset({"100", "200"}))
    assert (out.active, into.active) == (True, True)

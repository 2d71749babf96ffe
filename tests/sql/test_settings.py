"""``erp: type: sql`` through the real config loader: each rule's error names its key."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from sync.config import parse
from sync.errors import ConfigError

JOURNAL: dict[str, Any] = {
    "name": "journal",
    "mode": "journal",
    "table": "dbo.OINM",
    "key": ["TransNum"],
    "position": "TransNum",
    "product": "ItemCode",
    "warehouse": "Warehouse",
    "in_qty": "InQty",
    "out_qty": "OutQty",
    "kind": {"column": "TransType", "map": {20: "receipt", "15": "shipment", "69": "ignore"}},
    "date": "DocDate",
}
DOCUMENT: dict[str, Any] = {
    "name": "sales",
    "mode": "document",
    "query": "SELECT l.AutoID, l.ID, l.cInvCode, l.iQuantity, h.dDate, h.ufts "
    "FROM l JOIN h ON h.ID = l.ID",
    "document": ["ID"],
    "key": ["AutoID"],
    "updated": "ufts",
    "updated_type": "version",
    "product": "cInvCode",
    "warehouse": "cWhCode",
    "qty": "iQuantity",
    "negate": True,
    "kind": "shipment",
    "date": "dDate",
    "active": {"column": "dVeriDate", "not_null": True},
}
ERP: dict[str, Any] = {
    "type": "sql",
    "url": "sqlite:///erp.db",
    "timezone": "Asia/Shanghai",
    "streams": [JOURNAL, DOCUMENT],
    "on_hand": {"table": "OITW", "product": "ItemCode", "warehouse": "WhsCode", "qty": "OnHand"},
}


def config(erp: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"pipelines": [{"name": "main", "erp": erp, "crm": {"type": "memory-crm"}}]},
        allow_unicode=True,
    )


def problems(erp: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(config(erp), env={})
    return [(p.path, p.message) for p in info.value.problems]


def test_a_valid_sql_erp_loads() -> None:
    settings = parse(config(ERP), env={})
    erp = settings.pipelines[0].erp
    assert erp.type == "sql" and [s.name for s in erp.streams] == ["journal", "sales"]
    assert erp.streams[0].kind.map == {"20": "receipt", "15": "shipment", "69": "ignore"}
    assert str(erp.url) == "***"


def edited(stream: int | None, **changes: Any) -> dict[str, Any]:
    erp = copy.deepcopy(ERP)
    target = erp if stream is None else erp["streams"][stream]
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return erp


P = "pipelines[0].erp"
INVALID = [
    (edited(0, position=None), f"{P}.streams[0].position", "a journal stream needs position"),
    (edited(1, document=None), f"{P}.streams[1].document", "a document stream needs document"),
    (edited(1, updated=None), f"{P}.streams[1].updated", "a document stream needs updated"),
    (edited(0, out_qty=None), f"{P}.streams[0].out_qty", "in_qty needs out_qty"),
    (edited(0, in_qty=None), f"{P}.streams[0].in_qty", "out_qty needs in_qty"),
    (edited(0, qty="Q"), f"{P}.streams[0].qty", "give either qty or in_qty + out_qty"),
    (edited(1, qty=None), f"{P}.streams[1].qty", "required: qty, or in_qty + out_qty"),
    (edited(0, negate=True), f"{P}.streams[0].negate", "negate applies to qty only"),
    (edited(0, query="SELECT 1"), f"{P}.streams[0].table", "exactly one of table or query"),
    (edited(0, table=None), f"{P}.streams[0].table", "exactly one of table or query"),
    (edited(1, query="DELETE FROM x"), f"{P}.streams[1].query", "single SELECT"),
    (edited(1, query="SELECT 1; DROP TABLE x"), f"{P}.streams[1].query", "one statement"),
    (edited(1, name="journal"), f"{P}.streams[1].name", "already used by streams[0]"),
    (edited(1, name="Sales:1"), f"{P}.streams[1].name", "should match pattern"),
    (edited(0, overlap_versions=5), f"{P}.streams[0].overlap_versions", "only document streams"),
    (edited(1, position="X"), f"{P}.streams[1].position", "only journal streams"),
    (edited(0, kind="sideways"), f"{P}.streams[0].kind", "unknown kind 'sideways'"),
    (
        edited(0, kind={"column": "T", "map": {"1": "upwards"}}),
        f"{P}.streams[0].kind.map.1",
        "input should be 'receipt'",
    ),
    (
        edited(1, active={"column": "X"}),
        f"{P}.streams[1].active.not_null",
        "exactly one of not_null",
    ),
    (edited(None, url="nosuchdb://x"), f"{P}.url", "unknown database dialect"),
    (edited(None, statement_timeout_s=0), f"{P}.statement_timeout_s", "greater than 0"),
    (edited(None, streams=[]), f"{P}.streams", "at least 1 item"),
    (edited(None, on_hand=None), f"{P}.on_hand", "required key is missing"),
]


@pytest.mark.parametrize(("erp", "path", "message"), INVALID)
def test_each_rule_names_its_key(erp: dict[str, Any], path: str, message: str) -> None:
    found = problems(erp)
    assert any(p == path and message in m for p, m in found), found


def test_every_problem_at_once() -> None:
    erp = edited(0, position=None, out_qty=None)
    erp["streams"][1].pop("updated")
    paths = {p for p, _ in problems(erp)}
    assert {
        f"{P}.streams[0].position",
        f"{P}.streams[0].out_qty",
        f"{P}.streams[1].updated",
    } <= paths


def test_the_url_password_never_shows() -> None:
    erp = edited(None, url="postgresql://erp:Pw-never-shown-77@127.0.0.1:1/x")
    erp["streams"][0].pop("position")
    with pytest.raises(ConfigError) as info:
        parse(config(erp), env={})
    assert "Pw-never-shown-77" not in str(info.value)

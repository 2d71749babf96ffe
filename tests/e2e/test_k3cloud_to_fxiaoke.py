"""K/3 Cloud emulator → real engine (SQLite) → Fxiaoke emulator, over HTTP, cycle after cycle
(the document walk-through also into the Salesforce emulator)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import yaml

from sync.ledger import verify
from sync.pull import rescan
from sync.runtime import run_cycle
from tests.e2e.conftest import Systems

ROOT = Path(__file__).resolve().parents[2]


def line(material: str, qty: str, stock: str = "WH-MAIN") -> dict[str, str]:
    return {"material": material, "qty": qty, "stock": stock}


def approved(systems: Systems, form: str, *lines: dict[str, str]) -> int:
    fid = systems.erp.create_document(form, list(lines))
    systems.erp.audit(form, fid)
    return fid


def test_crm_follows_the_erp_through_every_kind_of_document(any_crm: Systems) -> None:
    systems = any_crm
    erp = systems.erp
    erp.set_opening("A-100", "WH-MAIN", 100)
    erp.set_opening("PHONE-X", "WH-MAIN", 200)
    pipeline = systems.pipeline()

    def cycle_and_compare() -> None:
        run_cycle(pipeline)
        ledger = {k: v for k, v in pipeline.store.levels("main").items() if v}
        assert ledger == systems.erp_stock()
        crm = systems.crm_stock()
        assert {k: v for k, v in crm.items() if v} == systems.erp_stock()
        assert verify(pipeline.store, "main") == {}

    cycle_and_compare()  # baseline from opening stock
    approved(systems, "STK_InStock", line("A-100", "20"), line("TABLET-S", "80"))
    approved(systems, "SAL_OUTSTOCK", line("A-100", "10"), line("PHONE-X", "100"))
    approved(systems, "SAL_RETURNSTOCK", line("A-100", "5"))
    cycle_and_compare()
    assert systems.crm_stock()[next(k for k in systems.crm_stock() if k.sku == "A-100")] == 115
    approved(
        systems,
        "STK_TransferDirect",
        {"material": "PHONE-X", "qty": "40", "src_stock": "WH-MAIN", "dest_stock": "WH-EAST"},
    )
    approved(systems, "STK_StockCountLoss", line("TABLET-S", "3"))
    approved(systems, "PUR_MRB", line("TABLET-S", "2"))
    cycle_and_compare()
    # approved, synced, then un-approved and edited: stops counting
    edited = approved(systems, "STK_MISCELLANEOUS", line("A-100", "7"))
    cycle_and_compare()
    erp.unaudit("STK_MISCELLANEOUS", edited)
    erp.edit_line(
        "STK_MISCELLANEOUS", edited, erp.line_ids("STK_MISCELLANEOUS", edited)[0], qty="9"
    )
    cycle_and_compare()
    # a cancellation
    cancelled = approved(systems, "STK_MisDelivery", line("PHONE-X", "4", "WH-EAST"))
    cycle_and_compare()
    erp.cancel("STK_MisDelivery", cancelled)
    cycle_and_compare()
    # a deletion: invisible to incremental pulls, found by the window rescan
    deleted = approved(systems, "STK_StockCountGain", line("A-100", "6"))
    cycle_and_compare()
    erp.delete("STK_StockCountGain", deleted)
    report = rescan(pipeline.store, pipeline.source, "main", now=pipeline.now)
    assert len(report.vanished) == 1
    cycle_and_compare()
    kinds = {c.kind for c in pipeline.store.conflicts(pipeline="main")}
    assert kinds == {"vanished_in_erp"}
    pipeline.close()


def test_a_malformed_erp_row_is_quarantined_and_the_rest_lands(systems: Systems) -> None:
    approved(systems, "STK_InStock", line("A-100", "20"), line("PHONE-X", "oops"))
    pipeline = systems.pipeline()
    run_cycle(pipeline)
    [conflict] = pipeline.store.conflicts(pipeline="main")
    assert conflict.kind == "record_error" and conflict.detail["field"]
    assert {k.sku: v for k, v in systems.crm_stock().items()} == {"A-100": Decimal(20)}
    pipeline.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )


def test_check_config_connect_reports_each_system(systems: Systems, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(systems.config()))
    result = _cli("check-config", str(good), "--connect")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "main.erp (k3cloud): ok" in result.stdout and "main.crm (fxiaoke): ok" in result.stdout

    bad = systems.config()
    bad["pipelines"][0]["erp"]["app_secret"] = "wrong-secret-wrong-secret-000000"
    bad["pipelines"][0]["crm"]["app_secret"] = "wrong-app-secret"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(bad))
    result = _cli("check-config", str(bad_file), "--connect")
    assert result.returncode == 1
    assert "main.erp (k3cloud): FAILED" in result.stdout
    assert "main.crm (fxiaoke): FAILED" in result.stdout
    assert "crm.app_secret: Fxiaoke 10006: appSecret missing or illegal" in result.stdout
    assert "hint: check the app's credentials on Fxiaoke's open platform" in result.stdout
    assert "wrong-secret" not in result.stdout + result.stderr

    wrong_url = systems.config()
    wrong_url["pipelines"][0]["erp"]["server_url"] = systems.erp_url + "/nope/"
    wrong_url["pipelines"][0]["erp"]["acct_id"] = "no-such-acct"
    url_file = tmp_path / "url.yaml"
    url_file.write_text(yaml.safe_dump(wrong_url))
    result = _cli("check-config", str(url_file), "--connect")
    assert result.returncode == 1 and "main.erp (k3cloud): FAILED" in result.stdout

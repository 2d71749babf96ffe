"""``erp: type: sql`` as a user runs it: the real loader and ``check-config --connect``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from sync.config import load
from tests.sql.conftest import _tables
from tests.test_cli import run


def write_config(tmp_path: Path, warehouse: str = "wh") -> Path:
    erp_db = tmp_path / "erp.db"
    engine = create_engine(f"sqlite:///{erp_db}")
    meta, journal, _lines, stock = _tables("cli")
    meta.create_all(engine)
    engine.dispose()
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
        pipelines:
          - name: main
            erp:
              type: sql
              url: ${{ERP_DB_URL}}
              timezone: Asia/Shanghai
              streams:
                - name: journal
                  mode: journal
                  table: {journal.name}
                  key: [id]
                  position: id
                  product: item
                  warehouse: {warehouse}
                  in_qty: qin
                  out_qty: qout
                  kind: {{column: ttype, map: {{20: receipt, 15: shipment, 69: ignore}}}}
                  date: ddate
              on_hand: {{table: {stock.name}, product: item, warehouse: wh, qty: qty}}
              reserved: {{table: {stock.name}, product: item, warehouse: wh, qty: res}}
            crm: {{type: memory-crm}}
        """)
    )
    return config


def test_loader_and_check_config_connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path)
    env = {"ERP_DB_URL": f"sqlite:///{tmp_path / 'erp.db'}"}
    monkeypatch.setenv("ERP_DB_URL", env["ERP_DB_URL"])
    settings = load(config)
    assert settings.pipelines[0].erp.type == "sql"
    result = run("check-config", str(config), "--connect", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "main.erp (sql): ok: sql database erp.db (sqlite, read-only)" in result.stdout
    assert "1 stream(s)" in result.stdout


def test_check_config_connect_names_the_missing_column(tmp_path: Path) -> None:
    config = write_config(tmp_path, warehouse="WhsCode")
    env = {"ERP_DB_URL": f"sqlite:///{tmp_path / 'erp.db'}"}
    result = run("check-config", str(config), "--connect", env=env)
    assert result.returncode == 1
    assert "main.erp (sql): FAILED" in result.stdout
    assert "erp.streams[0].warehouse" in result.stdout and "'WhsCode'" in result.stdout

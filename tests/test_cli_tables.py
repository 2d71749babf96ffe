"""Tables never cut data (issue 16): piped, every table the CLI prints shows whole codes.

rich ellipsized cells to fit an 80-column console whenever stdout was not a terminal:
``stocksync report | grep`` saw ``PHON…``. The state is built in-process on memory
connectors; the commands run as a user runs them, a subprocess with stdout a pipe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.alerts import LOW_KEY_COLUMNS
from sync.cli.reconcile import CONFLICT_COLUMNS
from sync.cli.tables import print_table
from sync.model import StockKey
from sync.reconcile_run import reconcile
from sync.report import COVER_COLUMNS
from sync.runtime import build_pipeline, open_store, run_cycle
from tests.reconcile.conftest import cli, memory_yaml
from tests.test_cli import run

NAME = "tables"
SKU = "PHONE-X12-MIDNIGHT-BLACK-256GB-DUALSIM-EU"  # 40 characters
UNKNOWN_SKU = "CASE-X12-LEATHER-MIDNIGHT-BLACK-MAGSAFE"  # the CRM has no such product
WAREHOUSE = "成品仓-SHANGHAI-PUDONG-DISTRIBUTION-CENTRE-07"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config whose state holds a low key, a blocked row and a crm_modified conflict."""
    folder = tmp_path_factory.mktemp("tables")
    path = folder / "stocksync.yaml"
    thresholds = f"    alerts: {{thresholds: {{'{SKU}@{WAREHOUSE}': 20}}}}\n"
    path.write_text(memory_yaml(NAME, thresholds, f"sqlite:///{folder / 'state.db'}"), "utf-8")
    erp, crm = MemoryErp(), MemoryCrm(skus={SKU})
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    erp.set_opening(SKU, WAREHOUSE, 5)
    erp.set_opening(UNKNOWN_SKU, WAREHOUSE, 3)
    settings = cfg.load(path)
    store = open_store(settings)
    pipeline = build_pipeline(settings.pipeline(NAME), store)
    try:
        run_cycle(pipeline)
        crm.set_value(StockKey(SKU, WAREHOUSE), Decimal(77))
        reconcile(pipeline)  # a dry run records the conflict
        yield path
    finally:
        pipeline.close()
        store.close()
        memory_source.REGISTRY.pop(NAME, None)
        memory_sink.REGISTRY.pop(NAME, None)


def _piped(*args: str, code: int = 0) -> str:
    """stdout of ``stocksync ARGS`` run with stdout a pipe; no table cell ellipsized."""
    result = run(*args)
    assert result.returncode == code, result.stdout + result.stderr
    cells = [line for line in result.stdout.splitlines() if "│" in line or "┃" in line]
    assert cells and not [line for line in cells if "…" in line], result.stdout
    return result.stdout


def _in_process(*args: str, code: int = 0) -> str:
    exit_code, out = cli(*args)
    assert exit_code == code, out
    return out


def _row_with(text: str, *cells: str) -> str:
    """The one table line that holds every cell whole."""
    rows = [line for line in text.splitlines() if all(cell in line for cell in cells)]
    assert len(rows) == 1, text
    return rows[0]


def test_report_shows_whole_codes_when_piped(world: Path) -> None:
    text = _piped("report", "-c", str(world))
    assert "stock cover" in text
    _row_with(text, SKU, WAREHOUSE, "5")


def test_status_shows_whole_keys_when_piped(world: Path) -> None:
    text = _piped("status", "-c", str(world))
    row = _row_with(text, f"{UNKNOWN_SKU}@{WAREHOUSE}", "blocked")
    assert f"CRM has no product '{UNKNOWN_SKU}'" in row


def test_conflicts_and_alerts_lists_show_whole_codes_when_piped(world: Path) -> None:
    _row_with(_piped("conflicts", "list", "-c", str(world)), f"{SKU}@{WAREHOUSE}", "crm_modified")
    _row_with(_piped("alerts", "list", "-c", str(world)), SKU, WAREHOUSE, "20")


@pytest.mark.parametrize(
    ("command", "columns"),
    [
        (("alerts", "list"), LOW_KEY_COLUMNS),
        (("conflicts", "list"), CONFLICT_COLUMNS),
        (("report",), (*COVER_COLUMNS, "days")),
    ],
)
def test_json_and_csv_have_the_same_rows_and_columns(
    world: Path, command: tuple[str, ...], columns: tuple[str, ...]
) -> None:
    rows = json.loads(_in_process(*command, "-c", str(world), "--format", "json"))
    assert rows and all(tuple(row) == columns for row in rows), rows
    as_csv = _in_process(*command, "-c", str(world), "--format", "csv")
    assert [r for r in csv.DictReader(io.StringIO(as_csv))] == [
        {k: "" if v is None else str(v) for k, v in row.items()} for row in rows
    ]
    assert as_csv.splitlines()[0] == ",".join(columns)


def test_db_verify_formats_list_the_differences_whole(world: Path) -> None:
    clean = _in_process("db", "verify", "-c", str(world), "--format", "csv")
    assert clean.splitlines() == ["pipeline,sku,warehouse,maintained,recomputed"]
    assert json.loads(_in_process("db", "verify", "-c", str(world), "--format", "json")) == []
    engine = create_engine(f"sqlite:///{world.parent / 'state.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE stock_levels SET qty = qty + 1")  # one micro-unit
    try:
        table = _piped("db", "verify", "-c", str(world), code=1)
        _row_with(table, NAME, SKU, WAREHOUSE, "5.000001")
        as_json = _in_process("db", "verify", "-c", str(world), "--format", "json", code=1)
        rows = {row["sku"]: row for row in json.loads(as_json)}
        assert rows[SKU] == {
            "pipeline": NAME,
            "sku": SKU,
            "warehouse": WAREHOUSE,
            "maintained": "5.000001",
            "recomputed": "5",
        }
        as_csv = _in_process("db", "verify", "-c", str(world), "--format", "csv", code=1)
        assert {r["sku"]: r for r in csv.DictReader(io.StringIO(as_csv))} == rows
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE stock_levels SET qty = qty - 1")
        engine.dispose()


def test_on_a_terminal_a_long_cell_wraps_and_keeps_every_character() -> None:
    console = Console(force_terminal=True, width=40, record=True, file=io.StringIO())
    table = Table(title="stock cover")
    for column in ("pipeline", "sku", "warehouse"):
        table.add_column(column)
    table.add_row(NAME, SKU, "W1")
    print_table(console, table)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 40
    sku_column = "".join(line.split("│")[2].strip() for line in text.splitlines() if "│" in line)
    assert SKU in sku_column

"""`stocksync explain` and the push log: a key's story after movements, an edit, pushes and
a conflict, on a file-backed memory pipeline; the push log's retention with a moved clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.cli.main import app
from sync.model import Movement, MovementKind, StockKey
from sync.push import Pusher, PushOptions
from sync.reconcile_run import reconcile
from sync.runtime import Pipeline, build_pipeline, open_store, run_cycle
from sync.state import StateStore
from sync.state.store import LEVEL, level_ref
from tests.conftest import Clock
from tests.reconcile.conftest import memory_yaml

NAME = "explaintest"
A, B = StockKey("A", "W1"), StockKey("B", "W1")


def invoke(*args: str) -> tuple[int, str, str]:
    """``stocksync ARGS`` in-process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    structlog.reset_defaults()  # the command pointed structlog at the runner's stream
    return result.exit_code, result.stdout, result.stderr


def line(key: str, kind: MovementKind, sku: str, qty: str, at: datetime, doc: str) -> Movement:
    return Movement(key, kind, sku, "W1", Decimal(qty), at, at, doc)


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> Iterator[tuple[Path, Pipeline, MemoryErp, MemoryCrm]]:
    """Opening 10 of A, a receipt of 5 and a shipment of 2; A reserved 4 in the ERP and 1
    statically; synced once."""
    path = tmp_path / "stocksync.yaml"
    extra = '    push: {reservations: {"A@W1": 1}}\n'
    path.write_text(memory_yaml(NAME, extra, f"sqlite:///{tmp_path / 'state.db'}"))
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    erp.set_opening("A", "W1", 10)
    erp.put(line("m:rcv:1:1", MovementKind.RECEIPT, "A", "5", clock.now, "RCV-1"))
    erp.put(line("m:shp:2:1", MovementKind.SHIPMENT, "A", "-2", clock.advance(60), "SHP-2"))
    erp.put(line("m:rcv:3:1", MovementKind.RECEIPT, "B", "3", clock.advance(60), "RCV-3"))
    erp.reserve("A", "W1", 4)
    settings = cfg.load(path)
    store = open_store(settings)
    pipeline = build_pipeline(settings.pipeline(NAME), store, now=clock)
    run_cycle(pipeline)
    yield path, pipeline, erp, crm
    store.close()
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)


def test_explain_tells_the_story_of_a_key(
    world: tuple[Path, Pipeline, MemoryErp, MemoryCrm], clock: Clock
) -> None:
    path, pipeline, erp, crm = world
    clock.advance(3600)
    erp.put(line("m:rcv:1:1", MovementKind.RECEIPT, "A", "7", clock.now, "RCV-1"))  # 5 → 7
    clock.advance(60)
    run_cycle(pipeline)  # on hand 13 → 15
    crm.set_value(A, Decimal(99))  # someone edits the CRM record
    clock.advance(60)
    reconcile(pipeline)  # dry run: records the conflict, writes nothing

    code, out, err = invoke("explain", "A@W1", "-c", str(path), "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    level = data["level"]
    binding = pipeline.store.binding(NAME, LEVEL, level_ref(A))
    assert binding is not None
    assert (level["on_hand"], level["opening"], level["from_movements"]) == ("15", "10", "5")
    assert level["recomputed"] == "15"
    assert (level["erp_reserved"], level["static_reserved"], level["reserved"]) == ("4", "1", "5")
    assert level["available"] == "10"
    assert (level["crm_id"], level["last_pushed"]) == (binding.crm_id, "15")

    movements = {m["key"]: m for m in data["movements"]}
    assert list(movements) == ["m:rcv:1:1", "m:shp:2:1"]  # newest business date first
    receipt = movements["m:rcv:1:1"]
    assert (receipt["bill_no"], receipt["line"], receipt["stream"]) == ("RCV-1", "1", "moves")
    assert (receipt["qty"], receipt["counts"], receipt["version"]) == ("7", "7", 2)
    assert [(e["version"], e["qty"]) for e in receipt["edits"]] == [(1, "5")]
    assert receipt["erp_modified_at"] > receipt["edits"][0]["erp_modified_at"]
    shipment = movements["m:shp:2:1"]
    assert (shipment["kind"], shipment["qty"], shipment["edits"]) == ("shipment", "-2", [])

    pushes = [(p["outcome"], p["on_hand"], p["available"], p["crm_id"]) for p in data["pushes"]]
    assert pushes == [
        ("updated", "15", "10", binding.crm_id),
        ("created", "13", "8", binding.crm_id),
    ]
    conflicts = [(c["kind"], c["crm"], c["ledger"]) for c in data["conflicts"]]
    assert conflicts == [("crm_modified", "99", "15")]

    # the table says the same to a person
    code, out, err = invoke("explain", "A@W1", "-c", str(path))
    assert code == 0, err
    assert "on_hand: 15" in out and "available: 10" in out
    assert "movements" in out and "pushes" in out and "crm_modified" in out


def test_explain_limit_keeps_the_totals_of_every_line(
    world: tuple[Path, Pipeline, MemoryErp, MemoryCrm],
) -> None:
    path = world[0]
    code, out, _ = invoke("explain", "A@W1", "-c", str(path), "--format", "json", "--limit", "1")
    assert code == 0
    data = json.loads(out)
    assert [m["key"] for m in data["movements"]] == ["m:shp:2:1"]
    assert data["level"]["from_movements"] == "3" and len(data["pushes"]) == 1


def test_a_line_edited_into_another_warehouse_stays_in_the_story(
    world: tuple[Path, Pipeline, MemoryErp, MemoryCrm], clock: Clock
) -> None:
    path, pipeline, erp, _ = world
    clock.advance(60)
    erp.put(
        Movement("m:shp:2:1", MovementKind.SHIPMENT, "A", "W2", Decimal(-2), clock.now, clock.now)
    )
    run_cycle(pipeline)
    code, out, _ = invoke("explain", "A@W1", "-c", str(path), "--format", "json")
    assert code == 0
    data = json.loads(out)
    moved = next(m for m in data["movements"] if m["key"] == "m:shp:2:1")
    assert moved["counts"] == "0" and moved["edits"][0]["warehouse"] == "W1"
    assert data["level"]["on_hand"] == data["level"]["recomputed"] == "15"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("A@W2",), "did you mean A@W1"),  # a typo in the warehouse
        (("X@W1",), "is unknown"),  # nothing close
        (("A",), "write it as SKU@WAREHOUSE"),
        (("A@W1", "--pipeline", "nope"), "no pipeline named 'nope'"),
        (("A@W1", "--format", "csv"), "use table or json"),
    ],
)
def test_explain_refuses_what_it_cannot_find(
    world: tuple[Path, Pipeline, MemoryErp, MemoryCrm], args: tuple[str, ...], message: str
) -> None:
    code, out, err = invoke("explain", *args, "-c", str(world[0]))
    assert code == 2 and out == ""
    assert message in err


# ------------------------------------------------------------------------ push log
def _receipt(clock: Clock, n: int, sku: str = "A", qty: str = "1") -> Movement:
    at = clock.now
    return Movement(f"memory:d:{n}:1", MovementKind.RECEIPT, sku, "W1", Decimal(qty), at, at)


def _push(store: StateStore, crm: MemoryCrm, clock: Clock, pipeline: str, days: int = 1) -> None:
    Pusher(store, crm, pipeline, now=clock, options=PushOptions(log_retention_days=days)).run()


def _pull(store: StateStore, erp: MemoryErp, clock: Clock, pipeline: str) -> None:
    from sync.pull import PullOptions, pull_all

    pull_all(store, erp, pipeline, now=clock, options=PullOptions(overlap_s=0))


def test_retention_prunes_old_push_log_rows_of_the_pipeline_only(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    erp.put(_receipt(clock, 1))
    for name in ("p", "q"):
        _pull(store, erp, clock, name)
        _push(store, crm, clock, name)
    first = clock.now
    clock.advance(23 * 3600)  # within a day: kept
    erp.put(_receipt(clock, 2))
    _pull(store, erp, clock, "p")
    _push(store, crm, clock, "p")
    assert [e.at for e in store.push_log("p", LEVEL, level_ref(A))] == [clock.now, first]
    clock.advance(2 * 3600)  # the first push is now 25 h old
    erp.put(_receipt(clock, 3))
    _pull(store, erp, clock, "p")
    _push(store, crm, clock, "p")
    kept = store.push_log("p", LEVEL, level_ref(A))
    assert [(e.outcome, e.qty) for e in kept] == [("updated", Decimal(3)), ("updated", Decimal(2))]
    assert [e.at for e in store.push_log("q", LEVEL, level_ref(A))] == [first]  # not q's turn


def test_failures_are_logged_with_their_error_and_a_blocked_row_once(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm(skus={"A"})
    erp.put(_receipt(clock, 1))
    erp.put(_receipt(clock, 2, sku="Z"))  # a product the CRM does not know
    _pull(store, erp, clock, "p")
    crm.faults.append(("create_level", "fail"))
    _push(store, crm, clock, "p")
    clock.advance(3600)
    _push(store, crm, clock, "p")
    a = store.push_log("p", LEVEL, level_ref(A))
    assert [(e.outcome, e.attempts) for e in a] == [("created", 1), ("retrying", 1)]
    assert a[1].error is not None and "injected failure" in a[1].error and a[1].qty is None
    z = store.push_log("p", LEVEL, level_ref(StockKey("Z", "W1")))
    assert [e.outcome for e in z] == ["blocked"]  # still blocked, logged the first time only


def test_the_reads_and_writes_on_every_backend(any_store: StateStore, pipeline: str) -> None:
    """The push log, its pruning, the key's lines and the forced queueing on each server."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    erp.put(_receipt(clock, 1, qty="2.5"))
    erp.put(_receipt(clock, 2, sku="A1"))
    _pull(any_store, erp, clock, pipeline)
    _push(any_store, crm, clock, pipeline)
    clock.advance(60)
    erp.put(_receipt(clock, 1, qty="3"))  # an edit: version 2
    _pull(any_store, erp, clock, pipeline)
    assert [(m.version, m.qty) for m in any_store.movements_of(pipeline, A)] == [
        (1, Decimal("2.5")),
        (2, Decimal(3)),
    ]
    assert any_store.select_levels(pipeline, skus=["A"]) == [A]
    assert StockKey("A1", "W1") in any_store.nearby_keys(pipeline, StockKey("A", "W9"))
    with any_store.transaction() as tx:
        tx.force_levels(pipeline, [level_ref(StockKey("A1", "W1"))], clock.now)
    crm.calls.clear()
    _push(any_store, crm, clock, pipeline)
    assert crm.calls["update_level"] == 2  # A changed, A1 forced although unchanged
    log = any_store.push_log(pipeline, LEVEL, level_ref(A))
    assert [(e.outcome, e.qty, e.at) for e in log] == [
        ("updated", Decimal(3), clock.now),
        ("created", Decimal("2.5"), clock.now - timedelta(seconds=60)),
    ]
    assert any_store.prune_push_log(pipeline, clock.now) == 2  # both created rows
    assert [e.outcome for e in any_store.push_log(pipeline, LEVEL, level_ref(A))] == ["updated"]

"""`stocksync resync`: chosen keys written again although unchanged since the last push,
the others left alone; selectors; refusals (exit 2) with nothing written."""

from __future__ import annotations

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
from sync.model import Movement, MovementKind, StockKey
from sync.runtime import Pipeline, build_pipeline, open_store, run_cycle
from sync.service.locks import Locks
from sync.state.store import LEVEL, level_ref
from tests.conftest import Clock
from tests.test_explain import invoke

NAME = "resynctest"
LEVELS = {
    StockKey("A", "W1"): Decimal(1),
    StockKey("A", "W2"): Decimal(2),
    StockKey("B", "W1"): Decimal(3),
    StockKey("B", "W2"): Decimal(4),
}
EDITED = Decimal(99)

World = tuple[Path, Pipeline, MemoryCrm]


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> Iterator[World]:
    """Four keys synced, then every CRM record edited to 99 behind stocksync's back.

    The command runs on the wall clock: the test clock starts an hour before it.
    """
    clock.now = datetime.now(UTC) - timedelta(hours=1)
    path = tmp_path / "stocksync.yaml"
    path.write_text(
        f"state: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\n"
        f"pipelines:\n  - name: {NAME}\n    erp: {{type: memory}}\n    crm: {{type: memory-crm}}\n"
    )
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    for n, (key, qty) in enumerate(LEVELS.items()):
        at = clock.advance(1)
        erp.put(Movement(f"m:d:{n}:1", MovementKind.RECEIPT, *key, qty, at, at))
    settings = cfg.load(path)
    store = open_store(settings)
    pipeline = build_pipeline(settings.pipeline(NAME), store, now=clock)
    run_cycle(pipeline)
    for key in LEVELS:
        crm.set_value(key, EDITED)
    crm.calls.clear()
    yield path, pipeline, crm
    store.close()
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)


def test_an_ordinary_push_leaves_the_edited_record_but_resync_rewrites_it(
    world: World, clock: Clock
) -> None:
    path, pipeline, crm = world
    clock.advance(60)
    run_cycle(pipeline)  # nothing changed in the ERP: equal to the last pushed, no write
    assert crm.values()[StockKey("A", "W1")] == EDITED and not crm.calls["update_level"]

    code, out, err = invoke("resync", "-c", str(path), "--key", "A@W1")
    assert code == 0, err
    assert f"{NAME}: queued 1 key(s); pushed 1" in out
    assert crm.values() == {**dict.fromkeys(LEVELS, EDITED), StockKey("A", "W1"): Decimal(1)}
    assert dict(crm.calls) == {"update_level": 1}  # by its binding: no lookup, no create
    binding = pipeline.store.binding(NAME, LEVEL, level_ref(StockKey("A", "W1")))
    assert binding is not None and binding.pushed_hash is not None  # normal again
    pushes = pipeline.store.push_log(NAME, LEVEL, level_ref(StockKey("A", "W1")))
    assert [(p.outcome, p.qty) for p in pushes] == [("updated", 1), ("created", 1)]


def test_resync_of_a_key_whose_record_was_deleted_creates_it_again(world: World) -> None:
    """The CRM record was deleted (or the tenant reset): the forced update by the bound
    id finds nothing, so the key is looked up and created again, not left dead."""
    path, pipeline, crm = world
    key = StockKey("A", "W1")
    (old_id,) = crm.records(key)
    crm.delete(old_id)
    code, out, err = invoke("resync", "-c", str(path), "--key", "A@W1")
    assert code == 0, err
    assert f"{NAME}: queued 1 key(s); pushed 1" in out
    (new_id,) = crm.records(key)
    assert new_id != old_id and crm.records(key) == {new_id: Decimal(1)}
    assert dict(crm.calls) == {"update_level": 1, "find_level": 1, "create_level": 1}
    binding = pipeline.store.binding(NAME, LEVEL, level_ref(key))
    assert binding is not None and binding.crm_id == new_id


@pytest.mark.parametrize(
    ("args", "rewritten"),
    [
        (("--sku", "A"), {("A", "W1"), ("A", "W2")}),
        (("--warehouse", "W2"), {("A", "W2"), ("B", "W2")}),
        (("--sku", "B", "--warehouse", "W1"), {("B", "W1")}),
        (("--key", "A@W2", "--key", "B@W1"), {("A", "W2"), ("B", "W1")}),
        (("--sku", "A", "--sku", "B", "--warehouse", "W1"), {("A", "W1"), ("B", "W1")}),
        (("--all",), set(LEVELS)),
    ],
)
def test_selectors_choose_the_keys(
    world: World, args: tuple[str, ...], rewritten: set[tuple[str, str]]
) -> None:
    path, _, crm = world
    code, out, err = invoke("resync", "-c", str(path), *args)
    assert code == 0, err
    assert f"queued {len(rewritten)} key(s)" in out
    assert crm.values() == {k: LEVELS[k] if k in rewritten else EDITED for k in LEVELS}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name what to resync"),
        (("--sku", "Z"), "no level matches"),
        (("--key", "A@W1", "--key", "A@W9"), "no level A@W9"),  # one unknown: none queued
        (("--key", "A"), "write it as SKU@WAREHOUSE"),
        (("--pipeline", "nope", "--all"), "no pipeline named 'nope'"),
    ],
)
def test_refusals_write_nothing(world: World, args: tuple[str, ...], message: str) -> None:
    path, pipeline, crm = world
    code, _, err = invoke("resync", "-c", str(path), *args)
    assert code == 2 and message in err
    assert crm.values() == dict.fromkeys(LEVELS, EDITED) and not crm.calls
    assert pipeline.store.outbox_rows(NAME) == []


def test_beside_a_running_daemon_it_refuses_like_once(world: World, tmp_path: Path) -> None:
    path, pipeline, crm = world
    daemon = Locks(pipeline.store.engine)
    daemon.acquire_daemon()
    try:
        code, _, err = invoke("resync", "-c", str(path), "--all")
    finally:
        daemon.release_daemon()
    assert code == 2 and "daemon is running" in err
    assert "hint: stop the daemon (SIGTERM), run resync, then start it again" in err
    assert crm.values() == dict.fromkeys(LEVELS, EDITED)


def test_a_forced_write_that_fails_is_still_forced_on_the_next_push(
    world: World, clock: Clock
) -> None:
    path, pipeline, crm = world
    crm.faults.append(("update_level", "fail"))
    code, out, _ = invoke("resync", "-c", str(path), "--key", "B@W2")
    assert code == 0 and "retrying 1" in out
    assert crm.values()[StockKey("B", "W2")] == EDITED
    clock.now = datetime.now(UTC) + timedelta(hours=1)  # past the backoff
    run_cycle(pipeline)  # an ordinary cycle: the value still equals the last pushed one
    assert crm.values() == {**dict.fromkeys(LEVELS, EDITED), StockKey("B", "W2"): Decimal(4)}

"""What each error the client maps says about a create, and what the engine does next.

Per code (reference §3) and per HTTP-layer failure: applied, not applied or
unknown (architecture §5.5). A create whose outcome is unknown must not be sent
again before a look-up by business key (architecture §5, reference §6). Every case
pushes 6 levels through the real Pusher and the Fxiaoke sink into the emulator,
the first create meeting the fault, and ends with 6 records equal to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from sync.errors import ConfigError, OutcomeUnknownError
from sync.model import LevelValue, StockKey
from sync.push import PushOptions, PushReport
from sync.state import StateStore
from sync.state.store import DEAD, LEVEL, MOVEMENT, PENDING, UNCERTAIN, level_ref
from tests.fxiaoke.rig import CREATE, M_CREATE, M_QUERY, UPDATE, Rig

KEYS = [StockKey(f"SKU-000{i}", wh) for i in (1, 2, 3) for wh in ("WH-MAIN", "WH-EAST")]
OPTIONS = PushOptions(max_attempts=8, retry_initial_s=30, retry_max_s=3600)

#: what the engine does after the first create met the fault
RETRIED_IN_CLIENT = "retried at once by the client"
LOOK_UP_NEXT = "row uncertain: the next attempt looks up first"
WAIT = "row pending until the server's hint (quota reset)"
DEAD_ROW = "row dead until `stocksync retry`"
STOP_RUN = "run stops with a configuration error"


@dataclass(frozen=True)
class Case:
    fault: str
    outcome: str  # applied / not applied / unknown
    action: str
    #: create calls the server received in all, once every row is pushed
    creates: int


CASES = [
    # the server failed or timed out behind the gateway: unknown
    *(Case(f"error_after_apply:{c}", "unknown", LOOK_UP_NEXT, 6) for c in (-1, -2, 50009)),
    *(Case(f"error:{c}", "unknown", LOOK_UP_NEXT, 7) for c in (-1, -2, 50009)),
    *(Case(f"http_{s}_after_apply", "unknown", LOOK_UP_NEXT, 6) for s in (500, 502, 503, 504)),
    Case("http_502", "unknown", LOOK_UP_NEXT, 7),
    Case("timeout_after_apply", "unknown", LOOK_UP_NEXT, 6),
    Case("timeout_before_apply", "unknown", LOOK_UP_NEXT, 7),
    # refused at the gateway before any work: not applied, safe to send again
    Case("connect_refused", "not applied", RETRIED_IN_CLIENT, 7),
    *(Case(f"error:{c}", "not applied", RETRIED_IN_CLIENT, 7) for c in (14001, 30004)),
    *(Case(f"error:{c}", "not applied", RETRIED_IN_CLIENT, 7) for c in (20016, 20005)),
    *(Case(f"http_{s}", "not applied", RETRIED_IN_CLIENT, 7) for s in (408, 429)),
    Case("error:30002", "not applied", WAIT, 7),
    *(
        Case(f"error:{c}", "not applied", STOP_RUN, 7)
        for c in (10006, 20006, 20015, 20017, 20021, 20022, 30003)
    ),
    *(Case(f"error:{c}", "not applied", DEAD_ROW, 7) for c in (10013, 15002, 32000, 99999)),
    *(Case(f"http_{s}", "not applied", DEAD_ROW, 7) for s in (400, 404)),
]


def _first_run(rig: Rig, case: Case) -> PushReport | None:
    rig.emulator.fail_next(CREATE, case.fault)
    if case.action == STOP_RUN:
        with pytest.raises(ConfigError):
            rig.push()
        assert rig.emulator.stock_records() == []
        return None
    return rig.push()


def _check_first_run(rig: Rig, store: StateStore, case: Case, report: PushReport | None) -> None:
    rows = store.outbox_rows(rig.pipeline)
    if case.action == STOP_RUN:
        assert len(rows) == len(KEYS)  # nothing pushed, nothing lost
        return
    assert len(rows) <= 1
    first = rows[0] if rows else None  # the row whose create met the fault
    if case.action == RETRIED_IN_CLIENT:
        assert report is not None and (report.pushed, report.retried) == (6, 0)
        assert first is None
    elif case.action == LOOK_UP_NEXT:
        assert report is not None and (report.pushed, report.retried) == (5, 1)
        assert first is not None and first.state == UNCERTAIN
    elif case.action == WAIT:
        assert report is not None and (report.pushed, report.retried) == (5, 1)
        assert first is not None and first.state == PENDING
    elif case.action == DEAD_ROW:
        assert report is not None and (report.pushed, report.dead) == (5, 1)
        assert first is not None and first.state == DEAD
        assert store.requeue_dead([first.id], rig.clock.now()) == 1


def _drain(rig: Rig, store: StateStore) -> None:
    for _ in range(5):
        if not store.outbox_rows(rig.pipeline):
            return
        rig.clock.advance(OPTIONS.retry_max_s + 1)
        rig.push()
    assert store.outbox_rows(rig.pipeline) == []


@pytest.mark.parametrize("bulk_bind_threshold", [2, 1000], ids=["bulk-bound", "looked-up"])
@pytest.mark.parametrize("case", CASES, ids=[c.fault for c in CASES])
def test_create_outcome_per_error(store: StateStore, case: Case, bulk_bind_threshold: int) -> None:
    options = PushOptions(
        max_attempts=OPTIONS.max_attempts,
        retry_initial_s=OPTIONS.retry_initial_s,
        retry_max_s=OPTIONS.retry_max_s,
        bulk_bind_threshold=bulk_bind_threshold,
    )
    rig = Rig(store, mirror=False, push_options=options)
    try:
        for n, key in enumerate(KEYS, start=1):
            rig.put(key.sku, key.warehouse, n * 10)
        rig.pull()
        report = _first_run(rig, case)
        _check_first_run(rig, store, case, report)
        _drain(rig, store)
        assert rig.emulator.calls[CREATE] == case.creates
        stock = rig.stock_by_key()
        assert {k: len(v) for k, v in stock.items()} == dict.fromkeys(KEYS, 1)
        levels = store.levels(rig.pipeline)
        assert {k: Decimal(v[0]["real_stock"]) for k, v in stock.items()} == levels
        bound = {r: b.crm_id for r, b in store.bindings(rig.pipeline, LEVEL).items()}
        assert bound == {level_ref(k): v[0]["_id"] for k, v in stock.items()}
    finally:
        rig.close()


def test_issue_case_50009_after_apply_makes_six_creates_for_six_keys(store: StateStore) -> None:
    """The reported case: bulk binding on (a first push of many levels), the first create
    answered 50009 after the server applied it."""
    rig = Rig(store, mirror=False, push_options=PushOptions(bulk_bind_threshold=2))
    try:
        for n, key in enumerate(KEYS, start=1):
            rig.put(key.sku, key.warehouse, n)
        rig.pull()
        rig.emulator.fail_next(CREATE, "error_after_apply:50009")
        rig.push()
        rig.clock.advance(3601)
        rig.push()
        assert rig.emulator.calls[CREATE] == 6
        assert rig.emulator.errors[50009] == 1
        by_code = rig.emulator.stock_by_code()  # raises on a duplicate
        assert by_code == {(k.sku, k.warehouse): Decimal(n) for n, k in enumerate(KEYS, 1)}
    finally:
        rig.close()


def test_mirror_create_answered_50009_after_apply_is_looked_up_not_duplicated(
    store: StateStore,
) -> None:
    """Same kind, another object: the movement mirror (custom object, unique erp_key__c)."""
    rig = Rig(store, mirror=True)
    try:
        moves = [rig.put("SKU-0001", "WH-MAIN", 5), rig.put("SKU-0002", "WH-EAST", 3)]
        rig.pull()
        rig.emulator.fail_next(M_CREATE, "error_after_apply:50009")
        first = rig.push()
        assert first.retried == 1
        rig.reset()
        rig.clock.advance(3601)
        rig.push()
        assert rig.calls()[M_CREATE] == 0  # found by its erp_key__c, not created again
        assert rig.calls()[M_QUERY] >= 1
        mirror = rig.mirror_by_key()
        assert {k: len(v) for k, v in mirror.items()} == {m.key: 1 for m in moves}
        assert [Decimal(mirror[m.key][0]["qty__c"]) for m in moves] == [Decimal(5), Decimal(3)]
    finally:
        rig.close()


def test_update_with_unknown_outcome_then_value_back_is_written_again(store: StateStore) -> None:
    """An update answered 5xx on every attempt, the first one applied: the CRM may hold the
    new value. When the ledger then returns to the last pushed value, the row must not be
    skipped as "unchanged" (it is uncertain), or the CRM keeps the value in between."""
    rig = Rig(store, mirror=False, push_options=PushOptions(max_attempts=8))
    try:
        rig.put("SKU-0001", "WH-MAIN", 10)
        rig.pull()
        rig.push()
        line = rig.put("SKU-0001", "WH-MAIN", 5)  # 15
        rig.pull()
        rig.emulator.fail_next(UPDATE, "http_502_after_apply")
        rig.emulator.fail_next(UPDATE, "http_502", times=7)  # the client's other attempts
        report = rig.push()
        assert report.retried == 1
        assert rig.emulator.stock_by_code()[("SKU-0001", "WH-MAIN")] == Decimal(15)
        (row,) = store.outbox_rows(rig.pipeline)
        assert row.state == UNCERTAIN
        rig.erp.set_active(line.key, False)  # back to 10, the last value pushed
        rig.pull()
        rig.clock.advance(3601)
        again = rig.push()
        assert (again.pushed, again.skipped) == (1, 0)
        assert rig.emulator.stock_by_code()[("SKU-0001", "WH-MAIN")] == Decimal(10)
        assert store.outbox_rows(rig.pipeline) == []
    finally:
        rig.close()


@pytest.mark.parametrize("returns_id", [True, False], ids=["with-dataId", "without-dataId"])
def test_mirror_create_answered_without_an_id_is_applied_and_found_by_key(
    store: StateStore, returns_id: bool
) -> None:
    """Errorless but without dataId (the reference's custom-object example): applied, so the
    sink finds the record by its erp_key__c instead of creating it again."""
    rig = Rig(store, mirror=True)
    rig.emulator.custom_create_returns_id = returns_id
    try:
        move = rig.put("SKU-0001", "WH-MAIN", 5)
        rig.pull()
        report = rig.push()
        assert (report.pushed, report.retried, report.dead) == (2, 0, 0)
        (record,) = rig.mirror_by_key()[move.key]
        binding = store.binding(rig.pipeline, MOVEMENT, move.key)
        assert binding is not None and binding.crm_id == record["_id"]
        assert rig.emulator.calls[M_CREATE] == 1
        assert rig.emulator.calls[M_QUERY] == (1 if returns_id else 2)
    finally:
        rig.close()


def test_an_idempotent_write_that_was_ever_unknown_stays_unknown(store: StateStore) -> None:
    """An update whose first attempt may have landed (-1 after apply) and whose later ones
    were refused (30004) is still of unknown outcome when the client gives up."""
    rig = Rig(store, mirror=False)
    try:
        key = KEYS[0]
        crm_id = rig.sink.create_level(key, LevelValue(Decimal(1), Decimal(1)))
        rig.emulator.fail_next(UPDATE, "error_after_apply:-1")
        rig.emulator.fail_next(UPDATE, "error:30004", times=10)
        with pytest.raises(OutcomeUnknownError) as info:
            rig.sink.update_level(crm_id, key, LevelValue(Decimal(8), Decimal(8)))
        assert "30004" in str(info.value) and "-1" in str(info.value)
        assert rig.emulator.calls[UPDATE] == rig.sink.settings.max_attempts
        assert rig.emulator.stock_by_code()[(key.sku, key.warehouse)] == Decimal(8)
    finally:
        rig.close()

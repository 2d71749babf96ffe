"""No duplicate CRM record, whatever fails when (architecture §5), against the Fxiaoke emulator.

A random ERP history (receipts and shipments over 4 SKUs × 2 warehouses, edits,
moves to the other warehouse, cancellations and re-approvals) is pulled into the
ledger with movement mirroring on and pushed by the real Pusher through the
Fxiaoke sink over HTTP, while the emulator injects faults at random calls:
timeouts before and after the write was applied, 5xx before and after apply,
30004 storms, -1 busy, token expiry, and answers of -1, -2 or 50009 after the
server applied the write (the outcome is unknown: architecture §5.5). Push cycles
then repeat, the clock moving past every backoff, until the outbox is empty.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectors.fxiaoke.mapping import at_places
from sync.errors import TransientError
from sync.model import StockKey
from sync.push import PushOptions
from sync.state import StateStore
from sync.state.store import LEVEL, MOVEMENT, level_ref
from tests.fxiaoke.rig import CREATE, M_CREATE, M_QUERY, M_UPDATE, QUERY, UPDATE, Rig

SKUS = ("SKU-0001", "SKU-0002", "SKU-0003", "SKU-0004")
WAREHOUSES = ("WH-MAIN", "WH-EAST")
PATHS = (CREATE, CREATE, CREATE, QUERY, QUERY, UPDATE, M_CREATE, M_CREATE, M_QUERY, M_UPDATE, "*")
KINDS = (
    "timeout_after_apply",
    "timeout_after_apply",
    "timeout_before_apply",
    "http_500",
    "http_500_after_apply",
    "busy",
    "rate",
    "token_expired",
    "error_after_apply:50009",
    "http_504_after_apply",
)
#: answers to a create that leave its outcome unknown, the write applied or not
UNKNOWN_ON_CREATE = (
    "error_after_apply:50009",
    "error_after_apply:-1",
    "error_after_apply:-2",
    "error:50009",
    "error:-1",
    "http_502_after_apply",
)
MAX_ROUNDS = 40

# eighths: levels with 3 decimals, which StockObj (2 dp) can only show rounded
qtys = st.builds(
    lambda n, sign: Decimal(n) / 8 * sign, st.integers(1, 80), st.sampled_from((1, -1))
)
ops = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(SKUS), st.sampled_from(WAREHOUSES), qtys),
    st.tuples(st.just("edit"), st.integers(0, 50), qtys),
    st.tuples(st.just("move"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("reapprove"), st.integers(0, 50)),
    st.tuples(st.just("sync")),
)
#: (path or "*", the call on that path where it starts, fault, how many calls in a row)
faults = st.tuples(
    st.sampled_from(PATHS), st.integers(1, 6), st.sampled_from(KINDS), st.integers(1, 4)
)
create_faults = st.tuples(
    st.sampled_from((CREATE, M_CREATE)),
    st.integers(1, 6),
    st.sampled_from(UNKNOWN_ON_CREATE),
    st.integers(1, 2),
)


class FaultPlan:
    """The emulator's fault hook: each drawn fault hits its path's n-th call and the next ones.

    ``"*"`` counts every data call. Faults are independent; where two claim one
    call, the first drawn wins.
    """

    def __init__(self, plan: list[tuple[str, int, str, int]]) -> None:
        self.plan = plan
        self.seen: Counter[str] = Counter()
        self.fired: list[tuple[str, str]] = []

    def __call__(self, path: str) -> str | None:
        self.seen[path] += 1
        self.seen["*"] += 1
        for where, at, kind, times in self.plan:
            if where in (path, "*") and at <= self.seen[where] < at + times:
                self.fired.append((path, kind))
                return kind
        return None


def apply(rig: Rig, op: tuple[object, ...]) -> None:
    """One ERP user action (or a sync); actions on lines pick one of the existing lines."""
    rig.clock.advance(1)
    lines = rig.erp.lines()
    if op[0] == "put":
        _, sku, warehouse, qty = op
        rig.put(str(sku), str(warehouse), Decimal(str(qty)))
    elif op[0] == "sync":
        cycle(rig)
    elif lines:
        assert isinstance(op[1], int)
        line = lines[op[1] % len(lines)]
        if op[0] == "edit":
            assert isinstance(op[2], Decimal)
            rig.erp.put(line._replace(qty=op[2]))
        elif op[0] == "move":
            other = WAREHOUSES[1 - WAREHOUSES.index(line.warehouse)]
            rig.erp.put(line._replace(warehouse=other))
        else:
            rig.erp.set_active(line.key, op[0] == "reapprove")


def cycle(rig: Rig) -> None:
    """One pull → push cycle. Like ``run_cycle``, a cycle may fail as a whole (the bulk
    read of StockObj raises past the client's retries) and the next one starts over."""
    rig.pull()
    try:
        rig.push()
    except TransientError:
        event("a push run failed in its bulk read")


def expected_levels(rig: Rig) -> dict[StockKey, Decimal]:
    """The oracle: Σ effective quantities per key, straight from the ERP's lines."""
    totals: dict[StockKey, Decimal] = defaultdict(Decimal)
    for m in rig.erp.lines():
        totals[m.stock_key] += m.effective_qty
    return {k: v for k, v in totals.items() if v}


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(ops, min_size=1, max_size=25),
    plan=st.lists(faults, max_size=8),
    on_create=st.lists(create_faults, max_size=3),
    bulk_bind_threshold=st.sampled_from((2, 1000)),
)
def test_no_duplicates_whatever_fails_over_http(
    store: StateStore,
    history: list[tuple[object, ...]],
    plan: list[tuple[str, int, str, int]],
    on_create: list[tuple[str, int, str, int]],
    bulk_bind_threshold: int,
) -> None:
    # at most 38 faults: more attempts than that, and no row can go dead because of them
    options = PushOptions(max_attempts=64, bulk_bind_threshold=bulk_bind_threshold)
    rig = Rig(store, push_options=options)
    faults = FaultPlan(on_create + plan)
    try:
        rig.emulator.fault_hook = faults
        for op in history:
            apply(rig, op)
        for _ in range(MAX_ROUNDS):
            rig.clock.advance(options.retry_max_s + 1)  # past every backoff
            cycle(rig)
            if not store.outbox_rows(rig.pipeline):
                break
        for path, kind in sorted(set(faults.fired)):
            event(f"{kind} on {path.removeprefix('/cgi/crm/')}")
        check(rig, store)
    finally:
        rig.close()


def check(rig: Rig, store: StateStore) -> None:
    pipeline = rig.pipeline
    assert store.outbox_rows(pipeline) == [], "the outbox did not drain"
    levels = store.levels(pipeline)
    assert {k: v for k, v in levels.items() if v} == expected_levels(rig)

    stock = rig.stock_by_key()
    assert set(stock) == set(levels), "a pushed level has no record, or a stray record exists"
    for key, records in stock.items():
        assert len(records) == 1, f"{key}: {len(records)} StockObj records"
        (rec,) = records
        # every level equal at the field's precision (2 dp, half-even)
        shown = at_places(levels[key], 2)
        assert Decimal(rec["real_stock"]) == shown, key
        assert Decimal(rec["available_stock"]) == shown, key
        assert Decimal(rec["blocked_stock"]) == 0, key
    bound = {ref: b.crm_id for ref, b in store.bindings(pipeline, LEVEL).items()}
    assert bound == {level_ref(k): recs[0]["_id"] for k, recs in stock.items()}

    mirror = rig.mirror_by_key()
    keys = set(store.movement_keys(pipeline))
    assert keys == {m.key for m in rig.erp.lines()}
    assert set(mirror) == keys, "a movement has no mirror record, or a stray one exists"
    bound = {ref: b.crm_id for ref, b in store.bindings(pipeline, MOVEMENT).items()}
    for key, records in mirror.items():
        assert len(records) == 1, f"{key}: {len(records)} mirror records"
        (rec,) = records
        stored = store.movement(pipeline, key)
        assert stored is not None
        assert Decimal(rec["qty__c"]) == stored.qty, key
        assert rec["active__c"] is stored.active, key
        assert (rec["sku__c"], rec["warehouse__c"]) == (stored.sku, stored.warehouse), key
        assert bound[key] == rec["_id"], key

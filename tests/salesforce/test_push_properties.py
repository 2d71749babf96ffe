"""No duplicate record and every level equal, whatever fails when, against the Salesforce
emulator: MemoryErp → ledger → Pusher → SalesforceSink over HTTP (in-process), batches of
sObject Collections upserts, the movement mirror on.

A random ERP history (receipts and shipments over 4 SKUs × 2 warehouses, edits, cancels) is
pushed while the emulator injects faults at random calls: lost answers (applied, no answer),
a 401 mid-batch (every session dropped), UNABLE_TO_LOCK_ROW for a whole call or one record,
a validation rule refusing one record in the middle of a batch, 403 REQUEST_LIMIT_EXCEEDED,
503 and 500s before and after the write, and "kills" (the sink and pusher dropped and built
again on the same state, as a new process). Push rounds then repeat, the clock moving past
every backoff and dead rows retried (the operator's ``stocksync retry``), until the outbox
is empty.
"""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from connectors.memory.source import MemoryErp
from connectors.salesforce.emulator import SalesforceEmulator
from sync.ledger import LedgerOptions
from sync.model import Movement, MovementKind
from sync.ports import MemoryTokenCache
from sync.pull import PullOptions, pull_all
from sync.push import Pusher, PushOptions
from sync.state import StateStore
from sync.state.store import LEVEL, MOVEMENT
from tests.salesforce.sink_rig import FakeClock, demo_org, levels, make_sink

SKUS = ("SKU-0001", "SKU-0002", "SKU-0003", "SKU-0004")
WAREHOUSES = ("WH-MAIN", "WH-EAST")
ROUTES = ("collections", "collections", "collections", "token", "describe", "*")
CALL_FAULTS = (
    "lost_answer",
    "lost_answer",
    "session_expired",
    "unable_to_lock_row",
    "request_limit",
    "server_unavailable",
    "timeout_before_apply",
    "http_500_after_apply",
)
RECORD_FAULTS = ("UNABLE_TO_LOCK_ROW", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
PULL = PullOptions(page_size=50, overlap_s=0)

ops = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(SKUS),
        st.sampled_from(WAREHOUSES),
        st.sampled_from((-5, -2, -1, 1, 2, 3, 7, 9)),
    ),
    st.tuples(st.just("edit"), st.integers(0, 30), st.integers(1, 9)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("push")),
    st.tuples(st.just("kill")),
)
#: (route, its n-th call from now, fault)
call_faults = st.tuples(st.sampled_from(ROUTES), st.integers(1, 3), st.sampled_from(CALL_FAULTS))
record_faults = st.tuples(
    st.sampled_from(SKUS), st.sampled_from(WAREHOUSES), st.sampled_from(RECORD_FAULTS)
)


class Faults:
    """The emulator's fault hook: each drawn fault hits its route's n-th call."""

    def __init__(self, plan: list[tuple[str, int, str]]) -> None:
        self.plan = list(plan)
        self.seen: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()

    def __call__(self, route: str) -> str | None:
        self.seen[route] += 1
        self.seen["*"] += 1
        for i, (where, nth, kind) in enumerate(self.plan):
            if self.seen[where] == nth and (where == route or where == "*"):
                del self.plan[i]
                self.fired[kind] += 1
                return kind
        return None


class Pipeline:
    """One pipeline on a shared state store; ``kill()`` is a new process on the same state."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.clock = FakeClock()
        self.org: SalesforceEmulator = demo_org(self.clock)
        self.erp = MemoryErp(now=self.clock.now)
        self.name = f"p{uuid.uuid4().hex[:10]}"
        self.tokens = MemoryTokenCache()  # the state DB's role: sessions outlive a kill
        self.lines: list[Movement] = []
        self._start()

    def _start(self) -> None:
        self.sink = make_sink(
            self.org, self.clock, token_cache=self.tokens, pipeline=self.name, batch_size=3
        )
        options = PushOptions(retry_initial_s=1, retry_max_s=60, batch_size=4)
        self.pusher = Pusher(self.store, self.sink, self.name, now=self.clock.now, options=options)

    def kill(self) -> None:
        self.sink.close()
        self._start()

    def put(self, sku: str, warehouse: str, qty: int) -> None:
        self.clock.advance(1)
        now, n = self.clock.now(), len(self.lines) + 1
        kind = MovementKind.RECEIPT if qty > 0 else MovementKind.SHIPMENT
        line = Movement(f"memory:d:{n}:1", kind, sku, warehouse, Decimal(qty), now, now, f"D{n}")
        self.lines.append(self.erp.put(line))

    def sync(self) -> None:
        self.clock.advance(1)
        pull_all(
            self.store,
            self.erp,
            self.name,
            now=self.clock.now,
            options=PULL,
            ledger=LedgerOptions(mirror_movements=True),
        )
        self.pusher.run()


@settings(max_examples=25, deadline=None)
@given(
    history=st.lists(ops, min_size=1, max_size=25),
    faults=st.lists(call_faults, min_size=1, max_size=8),
    refusals=st.lists(record_faults, min_size=1, max_size=3),
    create_only=st.sampled_from(("changed", "any")),
)
def test_no_duplicate_and_every_level_equal_whatever_fails(
    shared_sqlite: StateStore,
    history: list[tuple[object, ...]],
    faults: list[tuple[str, int, str]],
    refusals: list[tuple[str, str, str]],
    create_only: str,
) -> None:
    p = Pipeline(shared_sqlite)
    p.org.configure(create_only=create_only)  # the reference is silent (§8.1): both
    p.org.fault_hook = Faults(faults)
    for sku, wh, code in refusals:  # in the middle of the first batch with the key
        p.org.fail_record(f"{sku}|{wh}", code, times=1)
        p.put(sku, wh, 5)
    for op in history:
        if op[0] == "put":
            p.put(str(op[1]), str(op[2]), int(op[3]))  # type: ignore[call-overload]
        elif op[0] in ("edit", "cancel") and p.lines:
            line = p.lines[int(op[1]) % len(p.lines)]  # type: ignore[call-overload]
            if op[0] == "edit":
                p.clock.advance(1)
                p.erp.put(line._replace(qty=Decimal(int(op[2])) * (1 if line.qty > 0 else -1)))  # type: ignore[call-overload]
            else:
                p.erp.set_active(line.key, False)
        elif op[0] == "push":
            p.sync()
        elif op[0] == "kill":
            p.kill()
    p.sync()
    for _ in range(30):
        p.clock.advance(3600)
        shared_sqlite.requeue_dead(None, p.clock.now())
        p.pusher.run()
        if not shared_sqlite.outbox_rows(p.name):
            break
    for kind in p.org.fault_hook.fired:  # type: ignore[union-attr]
        event(f"fault fired: {kind}")
    assert not shared_sqlite.outbox_rows(p.name), shared_sqlite.outbox_rows(p.name)
    ledger = {(k.sku, k.warehouse): v for k, v in shared_sqlite.levels(p.name).items()}
    assert levels(p.org, "product_item") == ledger  # raises on a duplicate record
    mirrored = Counter(r["ERP_Key__c"] for r in p.org.records("Stock_Movement__c"))
    assert set(mirrored) == {m.key for m in p.lines} and set(mirrored.values()) <= {1}
    bound = shared_sqlite.bindings(p.name, LEVEL)
    ids = {r["Id"] for r in p.org.records("ProductItem")}
    assert {b.crm_id for b in bound.values()} <= ids
    assert len(shared_sqlite.bindings(p.name, MOVEMENT)) == len(mirrored)
    p.sink.close()


def test_the_push_pauses_at_the_budget_ceiling_and_resumes_when_usage_drops(
    store: StateStore,
) -> None:
    """The org's 24 h usage from Sforce-Limit-Info: at half the daily limit (the default
    ceiling) pushing pauses with rows pending, attempts unchanged; a fresh look at /limits
    after budget_recheck_s lets it go on once usage dropped."""
    p = Pipeline(store)
    p.org.set_api_usage(used=496, limit=1000)
    for i, sku in enumerate(SKUS):
        for wh in WAREHOUSES:
            p.put(sku, wh, i + 1)
    p.sync()  # login + describe + 2 calls of 3 (batch_size 3): usage reaches the ceiling
    report_rows = store.outbox_rows(p.name)
    assert report_rows and {(r.state, r.attempts) for r in report_rows} == {("pending", 0)}
    usage = p.sink.api_usage()
    assert usage is not None and usage.used >= usage.ceiling == 500
    calls = p.org.calls["collections"]
    p.pusher.run()  # paused without a call
    assert p.org.calls["collections"] == calls
    p.org.set_api_usage(used=100)
    p.clock.advance(300)
    report = p.pusher.run()
    assert report.paused is None and not store.outbox_rows(
        p.name,
    )
    ledger = {(k.sku, k.warehouse): v for k, v in store.levels(p.name).items()}
    assert levels(p.org, "product_item") == ledger

"""Random ERP activity interleaved with pulls, including between the pages of one pull.

Whatever the ERP does between two pages (edits, audits and un-audits with or without
an FModifyDate stamp, cancels, new bills), the next cycle that runs without activity
leaves the ledger equal to the ERP's on-hand for every key, with no reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import build
from sync.ports import ConnectorContext

from .conftest import StepClock, settings_for
from .rig import Ledger

FORM = "STK_InStock"
ACTIONS = ("edit", "audit", "unaudit", "cancel", "uncancel", "create")


@dataclass(frozen=True)
class Act:
    after_query: int  # 0: before the pull starts
    action: str
    bill: int
    qty: int
    warehouse: str
    wait_s: int  # ERP time before the action: past the overlap or not


acts = st.builds(
    Act,
    after_query=st.integers(0, 5),
    action=st.sampled_from(ACTIONS),
    bill=st.integers(0, 30),
    qty=st.integers(1, 9),
    warehouse=st.sampled_from(["W1", "W2"]),
    wait_s=st.sampled_from([0, 1, 90, 600]),
)


def apply(emulator: K3CloudEmulator, clock: StepClock, bills: list[int], act: Act) -> None:
    clock.current += timedelta(seconds=act.wait_s)
    if act.action == "create":
        lines = [{"material": "P", "qty": act.qty, "stock": act.warehouse}] * (act.qty % 3 + 1)
        bills.append(emulator.create_document(FORM, lines, status="C"))
        return
    fid = bills[act.bill % len(bills)]
    if act.action == "edit":
        entry = emulator.line_ids(FORM, fid)[0]
        emulator.edit_line(FORM, fid, entry, qty=act.qty, stock=act.warehouse)
    else:
        getattr(emulator, act.action)(FORM, fid)


@settings(max_examples=30, deadline=None)
@given(
    bumps=st.booleans(),
    page_size=st.integers(1, 4),
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=8),
    rounds=st.lists(st.lists(acts, max_size=6), min_size=1, max_size=4),
)
def test_ledger_equals_erp_after_every_quiet_cycle(
    bumps: bool, page_size: int, sizes: list[int], rounds: list[list[Act]]
) -> None:
    clock = StepClock()
    emulator = K3CloudEmulator(now=clock, status_bumps_modify_date=bumps)
    bills = [
        emulator.create_document(FORM, [{"material": "P", "qty": 1, "stock": "W1"}] * n, status="C")
        for n in sizes
    ]
    clock.current += timedelta(minutes=30)
    context = ConnectorContext(http_transport=transport_for(emulator))
    source = build(settings_for(emulator, streams=["purchase_receipt"]), context)
    book = Ledger(source, lambda: clock.current, page_size=page_size)
    try:
        for acts_of_round in rounds:
            for act in acts_of_round:
                if act.after_query == 0:
                    apply(emulator, clock, bills, act)
                else:
                    emulator.after_query(
                        act.after_query, lambda a=act: apply(emulator, clock, bills, a)
                    )
            book.cycle()
            emulator.forget_query_actions()  # those past the pull's last page never fire
            book.cycle()
            erp = {k: v for k, v in emulator.inventory().items() if v != Decimal(0)}
            assert book.levels() == erp
    finally:
        book.close()
        source.close()

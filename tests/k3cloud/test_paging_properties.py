"""Issue 13's randomized acceptance test for K/3 Cloud: ERP activity against pulls.

Random ERP activity — edits, line removals, audits and un-audits (with and without
an FModifyDate stamp: both values of ``status_bumps_modify_date``), cancels, new
bills — happens before a cycle and between the pages of its pulls (``after_query``).
Lines come in other units than the base (1 Box = 12 Pcs, 1 kg = 1000 g, 1 Cup =
1/3 L), on servers that know the forms' base-qty keys or not (``forget_fields``:
the source converts), with quantities finer than a CRM would show (0.005, and base
quantities of 1/3-unit lines that are still exact at 6 dp). After every cycle that
ran without activity during it, and after every cycle whose activity all came before
it, the ledger's level equals the ERP's on-hand (STK_Inventory) for every key, no
line is quarantined and the ledger holds no ADJUSTMENT: no reconcile is involved.

``STOCKSYNC_K3_EXAMPLES`` raises the example count (CI may run more).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import build
from connectors.k3cloud.store import BASE_QTY_KEYS
from sync.model import MovementKind
from sync.ports import ConnectorContext

from .conftest import StepClock, settings_for
from .rig import Ledger

#: stream → form, an inbound and an outbound one
STREAMS = {"purchase_receipt": "STK_InStock", "sales_outbound": "SAL_OUTSTOCK"}
#: material → (base unit, {unit: (numerator, denominator) base units per unit})
UNITS: dict[str, tuple[str, dict[str, tuple[int, int]]]] = {
    "EGG": ("Pcs", {"Box": (12, 1)}),
    "FLOUR": ("g", {"kg": (1000, 1)}),
    "OIL": ("L", {"Cup": (1, 3)}),
}
ACTIONS = ("edit", "remove_line", "audit", "unaudit", "cancel", "uncancel", "create")
EXAMPLES = int(os.environ.get("STOCKSYNC_K3_EXAMPLES", "40"))


@st.composite
def line_specs(draw: Any) -> dict[str, str]:
    """One line: a material, a unit of it, and a quantity whose base qty is exact at 6 dp."""
    material = draw(st.sampled_from(sorted(UNITS)))
    base, rates = UNITS[material]
    unit = draw(st.sampled_from([base, *sorted(rates)]))
    if rates.get(unit, (1, 1))[1] == 3:  # 1/3 of a base unit: k × 0.000003 stays exact
        qty = Decimal(draw(st.integers(1, 3_000_000))) * Decimal("0.000003")
    else:
        qty = draw(
            st.one_of(
                st.sampled_from([Decimal("0.005"), Decimal("0.001"), Decimal("1.0005")]),
                st.decimals(Decimal("0.001"), Decimal(20), places=3),
            )
        )
    stock = draw(st.sampled_from(["W1", "W2"]))
    return {"material": material, "unit": unit, "qty": str(qty), "stock": stock}


@dataclass(frozen=True)
class Act:
    after_query: int  # 0: before the cycle starts; n: after its n-th query is answered
    action: str
    form: str
    bill: int
    line: int
    spec: dict[str, str]
    more: tuple[dict[str, str], ...]  # further lines of a created bill
    wait_s: int  # ERP time before the action: past the overlap or not


acts = st.builds(
    Act,
    after_query=st.integers(0, 6),
    action=st.sampled_from(ACTIONS),
    form=st.sampled_from(sorted(STREAMS.values())),
    bill=st.integers(0, 30),
    line=st.integers(0, 3),
    spec=line_specs(),
    more=st.lists(line_specs(), max_size=3).map(tuple),
    wait_s=st.sampled_from([0, 1, 90, 600]),
)


class Erp:
    """The emulator and the bills created so far; applies acts, counting those run."""

    def __init__(self, emulator: K3CloudEmulator, clock: StepClock) -> None:
        self.emulator = emulator
        self.clock = clock
        self.bills: list[tuple[str, int]] = []
        self.done = 0
        #: (material, stock) of every line an act changed, before or after it
        self.touched: set[tuple[str, str]] = set()
        #: what happened, for ``--hypothesis-show-statistics`` (recorded in the test's thread)
        self.events: list[str] = []

    def create(self, form: str, specs: list[dict[str, str]]) -> int:
        fid = self.emulator.create_document(form, specs, status="C")
        self.bills.append((form, fid))
        return fid

    def keys_of(self, form: str, fid: int) -> set[tuple[str, str]]:
        doc = self.emulator.store.get(form, fid)
        return {(line.material, line.stocks[0]) for line in doc.lines}

    def apply(self, act: Act) -> None:
        self.done += 1
        self.clock.current += timedelta(seconds=act.wait_s)
        if act.action == "create" or not self.bills:
            fid = self.create(act.form, [act.spec, *act.more])
            self.touched |= self.keys_of(act.form, fid)
            return
        form, fid = self.bills[act.bill % len(self.bills)]
        self.touched |= self.keys_of(form, fid)
        self.change(act, form, fid)
        self.touched |= self.keys_of(form, fid)

    def change(self, act: Act, form: str, fid: int) -> None:
        entries = self.emulator.line_ids(form, fid)
        entry = entries[act.line % len(entries)]
        if act.action == "edit":
            self.emulator.edit_line(form, fid, entry, **act.spec)
        elif act.action == "remove_line":
            if len(entries) > 1:  # a bill keeps one line at least
                self.emulator.remove_line(form, fid, entry)
                self.events.append("a line removed")
        else:
            getattr(self.emulator, act.action)(form, fid)
        if act.after_query:
            self.events.append(f"{act.action} after a query of the cycle")


def erp_with_units(clock: StepClock, bumps: bool, forgotten: set[str]) -> K3CloudEmulator:
    emulator = K3CloudEmulator(now=clock, status_bumps_modify_date=bumps)
    for material, (base, rates) in UNITS.items():
        emulator.add_material(material, base)
        for unit, (numerator, denominator) in rates.items():
            emulator.add_conversion(material, unit, numerator, denominator)
    for form in forgotten:
        emulator.forget_fields(form, BASE_QTY_KEYS[form])
    return emulator


def cycle(book: Ledger) -> int:
    """One cycle over every stream; the number of lines quarantined."""
    return sum(book.cycle(stream).rejected for stream in STREAMS)


def assert_exact(
    book: Ledger, emulator: K3CloudEmulator, but: set[tuple[str, str]] | None = None
) -> None:
    """Ledger = ERP on every key (or on every key not in ``but``), and no ADJUSTMENT."""
    ledger, on_hand = book.levels(), emulator.inventory()
    if but is None:
        assert ledger == on_hand
    else:
        for key in (set(ledger) | set(on_hand)) - but:
            assert ledger.get(key, Decimal(0)) == on_hand.get(key, Decimal(0)), key
    kinds = {book.store.movement("p", key).kind for key in book.store.movement_keys("p")}  # type: ignore[union-attr]
    assert MovementKind.ADJUSTMENT not in kinds


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bumps=st.booleans(),
    forgotten=st.sets(st.sampled_from(sorted(STREAMS.values()))),
    page_size=st.integers(1, 4),
    first=st.lists(st.lists(line_specs(), min_size=1, max_size=4), min_size=1, max_size=6),
    rounds=st.lists(st.lists(acts, max_size=6), min_size=1, max_size=4),
)
def test_ledger_equals_erp_after_every_cycle(
    bumps: bool,
    forgotten: set[str],
    page_size: int,
    first: list[list[dict[str, str]]],
    rounds: list[list[Act]],
) -> None:
    clock = StepClock()
    emulator = erp_with_units(clock, bumps, forgotten)
    erp = Erp(emulator, clock)
    for index, specs in enumerate(first):
        erp.create(sorted(STREAMS.values())[index % 2], specs)
    clock.current += timedelta(minutes=30)
    context = ConnectorContext(http_transport=transport_for(emulator))
    source = build(settings_for(emulator, streams=list(STREAMS)), context)
    book = Ledger(source, lambda: clock.current, page_size=page_size)
    try:
        for acts_of_round in rounds:
            for act in acts_of_round:
                if act.after_query == 0:
                    erp.apply(act)
                else:
                    emulator.after_query(act.after_query, lambda a=act: erp.apply(a))
            before, erp.touched = erp.done, set()
            assert cycle(book) == 0
            # what changed before the cycle is read; keys changed during it may lag
            assert_exact(book, emulator, but=None if erp.done == before else erp.touched)
            emulator.forget_query_actions()  # those past the cycle's last query never run
            assert cycle(book) == 0
            assert_exact(book, emulator)
        for name in set(erp.events):
            event(name)
    finally:
        book.close()
        source.close()

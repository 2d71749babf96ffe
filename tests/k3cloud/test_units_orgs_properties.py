"""Random histories in several units and two orgs, on servers with and without base-qty
keys: folding the pulled movements always equals the ERP's on-hand in scope."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import build
from connectors.k3cloud.store import BASE_QTY_KEYS
from connectors.k3cloud.streams import STREAMS
from sync.ports import ConnectorContext
from tests.k3cloud.conftest import StepClock, settings_for
from tests.k3cloud.test_scenario import Follower

#: material → (base unit, {unit: base units per unit})
UNITS = {"EGG": ("Pcs", {"Box": 12, "Dz": 12}), "FLOUR": ("g", {"kg": 1000})}
ORGS = {"W1": "100", "W2": "100", "W3": "200"}
FORMS = {d.form_id: d for d in STREAMS.values()}


@st.composite
def lines(draw: Any, form: str) -> dict[str, str]:
    material = draw(st.sampled_from(sorted(UNITS)))
    base, rates = UNITS[material]
    unit = draw(st.sampled_from([base, *sorted(rates)]))
    qty = str(draw(st.decimals(Decimal("0.001"), Decimal(50), places=3)))
    line = {"material": material, "unit": unit, "qty": qty}
    if len(FORMS[form].sides) == 2:
        src, dest = draw(st.permutations(sorted(ORGS)))[:2]
        return {**line, "src_stock": src, "dest_stock": dest}
    return {**line, "stock": draw(st.sampled_from(sorted(ORGS)))}


@st.composite
def histories(draw: Any) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        action = draw(st.sampled_from(["create", "create", "unaudit", "edit", "cancel", "sync"]))
        if action == "create":
            form = draw(st.sampled_from(sorted(FORMS)))
            steps.append(("create", (form, draw(st.lists(lines(form), min_size=1, max_size=3)))))
        elif action == "edit":
            steps.append(("edit", draw(lines("STK_InStock"))))
        else:
            steps.append((action, draw(st.integers(0, 20))))
    return steps


def erp_with_units() -> K3CloudEmulator:
    emulator = K3CloudEmulator(now=StepClock())
    for material, (base, rates) in UNITS.items():
        emulator.add_material(material, base)
        for unit, factor in rates.items():
            emulator.add_conversion(material, unit, factor)
    for stock, org in ORGS.items():
        emulator.set_warehouse_org(stock, org)
    return emulator


def apply(emulator: K3CloudEmulator, docs: list[tuple[str, int]], step: tuple[str, Any]) -> None:
    action, arg = step
    if action == "create":
        form, specs = arg
        fid = emulator.create_document(form, specs)
        emulator.audit(form, fid)
        docs.append((form, fid))
    elif docs and action in ("unaudit", "cancel"):
        form, fid = docs[arg % len(docs)]
        getattr(emulator, action)(form, fid)
    elif action == "edit":
        receipts = [fid for form, fid in docs if form == "STK_InStock"]
        if receipts:
            fid = receipts[-1]
            entry = emulator.line_ids("STK_InStock", fid)[0]
            emulator.edit_line("STK_InStock", fid, entry, **arg)


#: a bill counted in org 200, then un-audited and edited into org 100's warehouse: an
#: incremental pull that filtered by org never saw it again (found by this search)
LEFT_THE_ORG = [
    (
        "create",
        ("STK_InStock", [{"material": "EGG", "unit": "Pcs", "qty": "0.001", "stock": "W3"}]),
    ),
    ("sync", 0),
    ("unaudit", 0),
    ("edit", {"material": "EGG", "unit": "Pcs", "qty": "0.001", "stock": "W1"}),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(history=LEFT_THE_ORG, orgs=["200"], forgotten=set())
@example(history=LEFT_THE_ORG[:2] + LEFT_THE_ORG[3:], orgs=["200"], forgotten=set())
@given(
    history=histories(),
    orgs=st.sampled_from([[], ["100"], ["200"], ["100", "200"]]),
    forgotten=st.sets(st.sampled_from(sorted(FORMS))),
)
def test_levels_equal_on_hand_in_every_unit_and_org(
    history: list[tuple[str, Any]], orgs: list[str], forgotten: set[str]
) -> None:
    emulator = erp_with_units()
    for form in forgotten:
        emulator.forget_fields(form, BASE_QTY_KEYS[form])
    context = ConnectorContext(
        now=lambda: datetime(2024, 5, 1, tzinfo=UTC), http_transport=transport_for(emulator)
    )
    source = build(settings_for(emulator, stock_orgs=orgs), context)
    follower = Follower(source)
    docs: list[tuple[str, int]] = []
    for step in [*history, ("sync", 0)]:
        apply(emulator, docs, step)
        if step[0] == "sync":
            follower.catch_up()
            erp = {(row.sku, row.warehouse): row.qty for row in source.on_hand()}
            assert follower.levels(set(), {}) == erp
    source.close()

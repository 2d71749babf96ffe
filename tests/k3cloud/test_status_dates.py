"""Status changes whether or not they stamp FModifyDate (issue 13 item 3).

The reference does not say whether audit, un-audit, cancel and un-cancel move
FModifyDate (k3cloud-stock-quantities.md §1.3); audit stamps FApproveDate and
cancel FCancelDate. The emulator does either behind a switch; the pull must see
every change under both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import build
from sync.ports import ConnectorContext

from .conftest import StepClock, settings_for
from .rig import Ledger

FORM = "STK_InStock"
KEY = ("P1", "CK001")
LATER = timedelta(minutes=10)


@pytest.fixture(params=[True, False], ids=["stamps-modify-date", "own-dates-only"])
def emulator(request: pytest.FixtureRequest, clock: StepClock) -> K3CloudEmulator:
    return K3CloudEmulator(now=clock, status_bumps_modify_date=request.param)


@pytest.fixture
def book(emulator: K3CloudEmulator, clock: StepClock) -> Iterator[Ledger]:
    context = ConnectorContext(http_transport=transport_for(emulator))
    source = build(settings_for(emulator, streams=["purchase_receipt"]), context)
    ledger = Ledger(source, lambda: clock.current, page_size=10)
    yield ledger
    ledger.close()
    source.close()


def modified(emulator: K3CloudEmulator, fid: int) -> object:
    return emulator.store.get(FORM, fid).modified


def test_the_switch_decides_whether_status_changes_stamp_fmodifydate(
    emulator: K3CloudEmulator,
) -> None:
    fid = emulator.create_document(FORM, [{"material": "P1", "qty": "1", "stock": "CK001"}])
    before = modified(emulator, fid)
    emulator.audit(FORM, fid)
    doc = emulator.store.get(FORM, fid)
    assert doc.approved is not None and doc.approved > before
    assert (doc.modified == doc.approved) is emulator.store.status_bumps_modify_date
    emulator.cancel(FORM, fid)
    assert doc.cancelled is not None and doc.cancelled > doc.approved
    assert (doc.modified == doc.cancelled) is emulator.store.status_bumps_modify_date
    # a pull on FModifyDate alone does not see the audit when the switch is off
    rows = emulator.run_query(
        {"FormId": FORM, "FieldKeys": "FID", "FilterString": f"FModifyDate > '{before}'"}
    )[1]
    assert bool(rows) is emulator.store.status_bumps_modify_date


def later_work(emulator: K3CloudEmulator, book: Ledger, clock: StepClock, fid: int) -> None:
    """Time passes and another bill is re-saved unchanged and pulled: the cursor moves past
    every earlier FModifyDate, overlap included, as on a working ERP."""
    clock.current += LATER
    entry = emulator.line_ids(FORM, fid)[0]
    emulator.edit_line(FORM, fid, entry, qty="1")
    clock.current += LATER
    book.cycle()
    clock.current += LATER


def test_bill_pulled_under_review_counts_once_audited(
    emulator: K3CloudEmulator, book: Ledger, clock: StepClock
) -> None:
    """The issue's case: ERP 11, ledger 1, for ever, when the audit did not move FModifyDate."""
    other = emulator.create_document(
        FORM, [{"material": "P1", "qty": "1", "stock": "CK001"}], status="C"
    )
    fid = emulator.create_document(
        FORM, [{"material": "P1", "qty": "10", "stock": "CK001"}], status="B"
    )
    book.cycle()
    later_work(emulator, book, clock, other)
    assert book.levels() == {KEY: Decimal(1)}
    emulator.audit(FORM, fid)
    book.cycle()
    assert book.levels() == emulator.inventory() == {KEY: Decimal(11)}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (("unaudit",), 1),
        (("cancel",), 1),
        (("cancel", "uncancel"), 11),
        (("unaudit", "audit"), 11),
    ],
)
def test_every_status_change_is_seen_after_one_cycle(
    emulator: K3CloudEmulator,
    book: Ledger,
    clock: StepClock,
    steps: tuple[str, ...],
    expected: int,
) -> None:
    """Other forms of the fault: un-audit, cancel and un-cancel, each pulled on its own."""
    other = emulator.create_document(
        FORM, [{"material": "P1", "qty": "1", "stock": "CK001"}], status="C"
    )
    fid = emulator.create_document(
        FORM, [{"material": "P1", "qty": "10", "stock": "CK001"}], status="C"
    )
    book.cycle()
    assert book.levels() == {KEY: Decimal(11)}
    for step in steps:
        later_work(emulator, book, clock, other)
        getattr(emulator, step)(FORM, fid)
        book.cycle()
        assert book.levels() == emulator.inventory()
    assert book.levels() == {KEY: Decimal(expected)}
    assert emulator.inventory() == {KEY: Decimal(expected)}

"""Paging over a result set that changes between pages, and servers that cap Limit.

Issue 13 items 1 and 4: every row present while a pull runs is read at least
once whatever the ERP does between pages, no document is split across pages,
and a short answer is not taken for the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import pytest

from connectors._emulator import transport_for
from connectors.k3cloud.client import keyset_after
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import K3CloudSource, build, whole_documents
from sync.errors import ConfigError, PermanentError
from sync.model import document_key
from sync.ports import ConnectorContext

from .conftest import StepClock, settings_for
from .rig import Ledger

FORM = "STK_InStock"


@pytest.fixture
def ledger(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource], clock: StepClock
) -> Iterator[Callable[..., Ledger]]:
    made: list[Ledger] = []

    def make(**options: object) -> Ledger:
        # the base-qty key named: no one-off key check, so the n-th query is the n-th page
        source = make_source(
            streams=["purchase_receipt"], base_qty_fields={"purchase_receipt": "FBaseUnitQty"}
        )
        made.append(Ledger(source, lambda: clock.current, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for each in made:
        each.close()


def approved_bills(emulator: K3CloudEmulator, count: int, qty: str = "1") -> list[int]:
    """``count`` approved one-line bills of one product × warehouse, stamped 1 s apart."""
    return [
        emulator.create_document(
            FORM, [{"material": "P1", "qty": qty, "stock": "CK001"}], status="C"
        )
        for _ in range(count)
    ]


def test_edit_between_pages_loses_no_bill(
    emulator: K3CloudEmulator, ledger: Callable[..., Ledger]
) -> None:
    """The issue's case: page size 2, five bills of 1, bill 2 edited to 2 after page 1."""
    fids = approved_bills(emulator, 5)
    entry = emulator.line_ids(FORM, fids[1])[0]
    emulator.after_query(1, lambda: emulator.edit_line(FORM, fids[1], entry, qty="2"))
    book = ledger(page_size=2)
    book.cycle()
    assert len(book.active_keys()) == 5, "every bill read in the pull the edit happened in"
    assert book.levels() == {("P1", "CK001"): Decimal(5)}  # bill 2 as it was when read
    book.cycle()
    assert book.levels() == emulator.inventory() == {("P1", "CK001"): Decimal(6)}


@pytest.mark.parametrize("after", [1, 2, 3])
def test_deletion_and_new_bills_between_pages_lose_nothing(
    emulator: K3CloudEmulator, ledger: Callable[..., Ledger], after: int
) -> None:
    """Another form of the fault: a bill before the position vanishes (offset paging then
    skipped one) and two arrive, between any two pages."""
    fids = approved_bills(emulator, 7)

    def churn() -> None:
        emulator.delete(FORM, fids[0])
        approved_bills(emulator, 2, qty="10")

    emulator.after_query(after, churn)
    book = ledger(page_size=2)
    book.cycle()
    read = {document_key(k).rsplit(":", 1)[1] for k in book.active_keys()}
    assert {str(f) for f in fids[1:]} <= read
    book.cycle()
    # the deleted bill is the window rescan's to withdraw: count it on the ERP side too
    assert book.levels() == {("P1", "CK001"): emulator.inventory()[("P1", "CK001")] + 1}


def test_status_change_between_pages_is_counted_next_cycle(
    emulator: K3CloudEmulator, ledger: Callable[..., Ledger]
) -> None:
    fids = approved_bills(emulator, 5)
    emulator.after_query(2, lambda: emulator.unaudit(FORM, fids[0]))
    book = ledger(page_size=2)
    book.cycle()
    book.cycle()
    assert book.levels() == emulator.inventory() == {("P1", "CK001"): Decimal(4)}


def test_pages_hold_whole_documents(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    """No page splits a document; one longer than a page comes alone; other pages
    outgrow the page size by less than one document; each page names exactly its
    documents as complete."""
    sizes = [1, 2, 7, 1, 3, 2]
    fids = [
        emulator.create_document(
            FORM, [{"material": f"M{i}", "qty": "1", "stock": "CK001"} for i in range(n)]
        )
        for n in sizes
    ]
    source = make_source(streams=["purchase_receipt"])
    pages = list(source.pull("purchase_receipt", None, 3))
    seen: list[int] = []
    for page in pages:
        docs = {document_key(m.key) for m in page.movements}
        assert page.complete_documents == docs
        seen += sorted(int(d.rsplit(":", 1)[1]) for d in docs)
        for doc in docs:
            fid = int(doc.rsplit(":", 1)[1])
            lines = [m for m in page.movements if document_key(m.key) == doc]
            assert len(lines) == sizes[fids.index(fid)], f"document {fid} split"
    assert seen == fids, "each document once, in FID order"
    assert [len(p.movements) for p in pages if len(p.complete_documents) == 1].count(7) == 1
    assert all(len(p.movements) <= 3 + 3 - 1 for p in pages if len(p.movements) != 7)
    assert [p.cursor is None for p in pages] == [True] * (len(pages) - 1) + [False]


def test_a_line_added_to_a_document_between_its_pages_is_in_its_page(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    fid = emulator.create_document(
        FORM, [{"material": f"M{i}", "qty": "1", "stock": "CK001"} for i in range(4)]
    )
    entry = emulator.line_ids(FORM, fid)[3]
    emulator.after_query(1, lambda: emulator.edit_line(FORM, fid, entry, qty="5"))
    source = make_source(streams=["purchase_receipt"])
    (page,) = list(source.pull("purchase_receipt", None, 2))
    assert len(page.movements) == 4 and page.complete_documents == {f"k3cloud:{FORM}:{fid}"}
    assert page.movements[-1].qty == Decimal(5), "lines after the position are read as they are"


def capped(
    cap: int, over_cap: Literal["cap", "refuse"] = "cap"
) -> tuple[K3CloudEmulator, K3CloudSource]:
    """An emulator whose server caps Limit at ``cap``, and a source over it."""
    emulator = K3CloudEmulator(now=StepClock(), max_limit=cap, limit_over_cap=over_cap)
    context = ConnectorContext(http_transport=transport_for(emulator))
    return emulator, build(settings_for(emulator, streams=["purchase_receipt"]), context)


def test_capped_limit_reads_every_line() -> None:
    """The issue's case: 3,000 lines, a server capping Limit at 500, 1,000 asked."""
    emulator, source = capped(500)
    for doc in range(300):
        lines = [{"material": f"M{doc}", "qty": "1", "stock": f"W{i}"} for i in range(10)]
        emulator.create_document(FORM, lines, status="C")
    try:
        keys = [m.key for p in source.pull("purchase_receipt", None, 1000) for m in p.movements]
        assert len(keys) == len(set(keys)) == 3000
        on_hand = list(source.on_hand())
        assert len(on_hand) == 3000 and sum(r.qty for r in on_hand) == 3000
        since = datetime(2024, 1, 1, tzinfo=UTC)
        assert set(source.keys_in_window("purchase_receipt", since)) == set(keys)
    finally:
        source.close()


def test_capped_limit_offset_paging_reads_every_row() -> None:
    """StartRow paging (for results that do not change) also goes on to an empty answer."""
    emulator, source = capped(7)
    for doc in range(10):
        emulator.create_document(FORM, [{"material": f"M{doc}", "qty": "1", "stock": "W"}])
    query = {"FormId": FORM, "FieldKeys": "FID", "OrderString": "FID ASC"}
    try:
        pages = list(source.client.iter_bill_query(query, page_size=10, where="x"))
        assert [len(p) for p in pages] == [7, 3]
        assert emulator.calls["ExecuteBillQuery"] == 3
    finally:
        source.close()


def test_a_refused_limit_names_pull_page_size() -> None:
    emulator, source = capped(500, "refuse")
    emulator.create_document(FORM, [{"material": "M", "qty": "1", "stock": "W"}])
    try:
        with pytest.raises(ConfigError) as caught:
            list(source.pull("purchase_receipt", None, 1000))
        assert caught.value.problems[0].path == "pull.page_size"
        assert "500" in caught.value.problems[0].message
        assert len(list(source.pull("purchase_receipt", None, 500))) == 1
    finally:
        source.close()


def test_keyset_position_is_a_filter_literal() -> None:
    keys = [("FID", 0, "num"), ("FEntity_FEntryID", 1, "num"), ("FBillNo", 2, "str")]
    assert keyset_after(keys, [7, 12, "O'K"]) == (
        "(FID > 7) OR (FID = 7 AND FEntity_FEntryID > 12)"
        " OR (FID = 7 AND FEntity_FEntryID = 12 AND FBillNo > 'O''K')"
    )
    with pytest.raises(PermanentError, match="not a number"):
        keyset_after(keys[:1], [None])


def test_five_hundred_bills_with_edits_during_the_pull(
    emulator: K3CloudEmulator, ledger: Callable[..., Ledger], clock: StepClock
) -> None:
    """The issue's larger case: 500 bills over three hours, page size 20, a bill edited
    after each of the first 20 answers (32 bills were lost)."""
    fids = []
    for _ in range(500):
        clock.current += timedelta(seconds=20)  # 500 × ~21 s ≈ three hours
        fids.append(approved_bills(emulator, 1)[0])
    for n in range(1, 21):
        fid = fids[(n * 37) % 500]
        entry = emulator.line_ids(FORM, fid)[0]
        emulator.after_query(n, lambda f=fid, e=entry, q=n: emulator.edit_line(FORM, f, e, qty=q))
    book = ledger(page_size=20)
    book.cycle()
    assert len(book.active_keys()) == 500
    book.cycle()
    # 480 bills of 1 and the 20 edited ones at 1 … 20
    assert book.levels() == emulator.inventory() == {("P1", "CK001"): Decimal(480 + 210)}


@pytest.mark.parametrize(
    ("fids", "limit", "pages"),
    [
        ([1, 1, 1, 1, 1, 2], 2, [[1, 1, 1, 1, 1], [2]]),
        ([1, 2, 2, 2, 2, 3, 3, 4], 3, [[1], [2, 2, 2, 2], [3, 3], [4]]),
        ([1, 2, 3, 4], 2, [[1], [2, 3], [4]]),
        ([1, 1, 1, 2, 3, 3, 4, 5], 2, [[1, 1, 1], [2], [3, 3, 4], [5]]),
        ([1, 1, 2, 2, 3], 4, [[1, 1], [2, 2], [3]]),
        ([5], 3, [[5]]),
    ],
)
def test_whole_documents_regroups_answers(
    fids: list[int], limit: int, pages: list[list[int]]
) -> None:
    """Answers as a server gives them (``limit`` rows each, then an empty one) → pages."""
    rows = [[fid, n] for n, fid in enumerate(fids)]
    answers = [rows[i : i + limit] for i in range(0, len(rows), limit)]
    got = list(whole_documents(answers, 0))
    assert [[r[0] for r in group] for group, _ in got] == pages
    assert [last for _, last in got] == [False] * (len(pages) - 1) + [True]

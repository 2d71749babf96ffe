"""Issue 13 item 2: lines removed from a re-read document are withdrawn, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from connectors.memory.source import MemoryErp
from sync.ledger import LINE_REMOVED, apply_page, verify
from sync.model import Cursor, Movement, MovementKind, Page, RejectedRecord, StockKey
from sync.pull import PullOptions, pull_all
from sync.state import StateStore
from sync.state.rows import display_ref
from sync.state.tx import Tx
from tests.conftest import Clock

OPTIONS = PullOptions(page_size=50, overlap_s=120)
DOC = "memory:STK_StockCountGain:100001"


def _line(
    doc: str, line: int, qty: str, at: datetime, *, sku: str = "", wh: str = "CK001"
) -> Movement:
    return Movement(
        f"{doc}:{line}",
        MovementKind.COUNT_GAIN,
        sku or f"M{line}",
        wh,
        Decimal(qty),
        at,
        at,
        "PYD001",
    )


def _count_gain(erp: MemoryErp, clock: Clock) -> None:
    """An approved STK_StockCountGain with three lines of 10, 20 and 30."""
    for n, qty in ((1, "10"), (2, "20"), (3, "30")):
        erp.put(_line(DOC, n, qty, clock.now))


def test_a_count_gain_edited_to_its_first_line_withdraws_the_other_two(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    erp = MemoryErp(now=clock)
    _count_gain(erp, clock)
    pull_all(any_store, erp, pipeline, now=clock, options=OPTIONS)
    assert any_store.levels(pipeline) == {
        StockKey("M1", "CK001"): 10,
        StockKey("M2", "CK001"): 20,
        StockKey("M3", "CK001"): 30,
    }
    clock.advance(300)
    erp.delete_line(f"{DOC}:2")
    erp.delete_line(f"{DOC}:3")
    report = pull_all(any_store, erp, pipeline, now=clock, options=OPTIONS)  # what `once` pulls

    assert (report.updated, report.withdrawn) == (2, 2)
    assert any_store.levels(pipeline) == {
        StockKey("M1", "CK001"): 10,
        StockKey("M2", "CK001"): 0,
        StockKey("M3", "CK001"): 0,
    }
    for n in (2, 3):
        versions = any_store.movement_versions(pipeline, f"{DOC}:{n}")
        assert [(v.version, v.active, v.reason) for v in versions] == [
            (1, True, None),
            (2, False, LINE_REMOVED),
        ]
    first = any_store.movement(pipeline, f"{DOC}:1")
    assert first is not None and first.active and first.version == 1
    assert not verify(any_store, pipeline)
    # the CRM hears of both levels that went to 0
    queued = {display_ref(row.ref) for row in any_store.outbox_rows(pipeline)}
    assert queued >= {"M2@CK001", "M3@CK001"}


def test_a_removed_transfer_leg_is_withdrawn_on_its_own_side(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    # another form: a transfer document with two lines, each with an out and an in side
    erp = MemoryErp(now=clock)
    doc = "memory:STK_TransferDirect:7"
    for n in (1, 2):
        for side, wh, sign, kind in (
            ("out", "CK001", -1, MovementKind.TRANSFER_OUT),
            ("in", "CK002", 1, MovementKind.TRANSFER_IN),
        ):
            erp.put(
                Movement(
                    f"{doc}:{n}:{side}",
                    kind,
                    f"M{n}",
                    wh,
                    Decimal(sign * 5 * n),
                    clock.now,
                    clock.now,
                )
            )
    pull_all(any_store, erp, pipeline, now=clock, options=OPTIONS)
    clock.advance(300)
    erp.delete_line(f"{doc}:2:out")
    erp.delete_line(f"{doc}:2:in")
    pull_all(any_store, erp, pipeline, now=clock, options=OPTIONS)
    levels = any_store.levels(pipeline)
    assert levels[StockKey("M1", "CK001")] == -5 and levels[StockKey("M1", "CK002")] == 5
    assert levels[StockKey("M2", "CK001")] == 0 and levels[StockKey("M2", "CK002")] == 0


def _page(lines: list[Movement], docs: set[str], at: datetime) -> Page:
    return Page("s", lines, Cursor(at, "z"), complete_documents=frozenset(docs))


def test_same_page_again_is_a_no_op_and_neighbouring_documents_are_untouched(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    t0 = clock.now
    # documents 1, 10 and 1x share the prefix "…:1" but not "…:1:"
    lines = [
        _line("memory:t:1", 1, "1", t0),
        _line("memory:t:1", 2, "2", t0),
        _line("memory:t:10", 1, "4", t0),
        _line("memory:t:1x", 1, "8", t0),
    ]
    apply_page(any_store, pipeline, _page(lines, set(), t0), now=t0)
    t1 = clock.advance(60)
    restamped = lines[0]._replace(source_updated_at=t1)  # the document's new modify date
    edited = _page([restamped], {"memory:t:1"}, t1)
    result = apply_page(any_store, pipeline, edited, now=t1)
    assert (result.withdrawn, result.updated, result.unchanged) == (1, 1, 1)
    again = apply_page(any_store, pipeline, edited, now=clock.advance(1))
    assert (again.changed, again.withdrawn) == (0, 0)
    assert len(any_store.movement_versions(pipeline, "memory:t:1:2")) == 2
    for key in ("memory:t:10:1", "memory:t:1x:1"):
        stored = any_store.movement(pipeline, key)
        assert stored is not None and stored.active and stored.version == 1
    assert any_store.levels(pipeline)[StockKey("M2", "CK001")] == 0
    assert any_store.levels(pipeline)[StockKey("M1", "CK001")] == 13


def test_a_document_withdrawn_whole_is_named_with_no_movements(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    t0 = clock.now
    lines = [_line("memory:t:5", n, "3", t0) for n in (1, 2)]
    apply_page(any_store, pipeline, _page(lines, {"memory:t:5"}, t0), now=t0)
    t1 = clock.advance(60)
    result = apply_page(any_store, pipeline, _page([], {"memory:t:5"}, t1), now=t1)
    assert result.withdrawn == 2
    assert any_store.levels(pipeline) == {StockKey("M1", "CK001"): 0, StockKey("M2", "CK001"): 0}
    stored = any_store.movement(pipeline, "memory:t:5:1")
    assert stored is not None and stored.source_updated_at == t1  # the document's stamp


def test_an_older_read_neither_withdraws_newer_lines_nor_revives_withdrawn_ones(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    t0 = clock.now
    old_read = _page([_line("memory:t:8", n, "1", t0) for n in (1, 2)], {"memory:t:8"}, t0)
    apply_page(any_store, pipeline, old_read, now=t0)
    t1 = clock.advance(60)
    # the ERP removes line 2 and adds line 3
    newer = _page(
        [_line("memory:t:8", 1, "1", t1), _line("memory:t:8", 3, "5", t1)], {"memory:t:8"}, t1
    )
    apply_page(any_store, pipeline, newer, now=t1)
    # the old read is delivered late (overlap, reordered pages)
    late = apply_page(any_store, pipeline, old_read, now=clock.advance(60))
    assert (late.changed, late.withdrawn) == (0, 0)
    assert any_store.levels(pipeline) == {
        StockKey("M1", "CK001"): 1,
        StockKey("M2", "CK001"): 0,
        StockKey("M3", "CK001"): 5,
    }


def test_a_complete_document_with_lines_of_several_stamps_withdraws_the_removed_one(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    """A source stamping lines, not documents: line 1 removed (line 2 restamped at t1), then
    line 3 edited alone (t2). A page carrying lines 2 and 3 whole withdraws line 1 at the
    document's newest stamp, whatever the other lines' stamps, and a late copy of the page
    with the earlier stamps alone changes nothing."""
    t0 = clock.now
    lines = [_line("memory:t:4", n, str(n), t0) for n in (1, 2, 3)]
    apply_page(any_store, pipeline, _page(lines, {"memory:t:4"}, t0), now=t0)
    t1 = clock.advance(60)
    t2 = clock.advance(60)
    mixed = [  # occurred at t0 still: only the stamps and line 3's quantity change
        lines[1]._replace(source_updated_at=t1),
        lines[2]._replace(qty=Decimal(7), source_updated_at=t2),
    ]
    result = apply_page(any_store, pipeline, _page(mixed, {"memory:t:4"}, t2), now=t2)
    assert (result.withdrawn, result.updated, result.unchanged) == (1, 2, 1)
    removed = any_store.movement(pipeline, "memory:t:4:1")
    assert removed is not None and not removed.active and removed.source_updated_at == t2
    assert any_store.levels(pipeline) == {
        StockKey("M1", "CK001"): 0,
        StockKey("M2", "CK001"): 2,
        StockKey("M3", "CK001"): 7,
    }
    late = apply_page(any_store, pipeline, _page(mixed, {"memory:t:4"}, t2), now=t2)
    assert (late.changed, late.withdrawn) == (0, 0)
    assert not verify(any_store, pipeline)


def test_a_quarantined_line_of_a_complete_document_is_not_withdrawn(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    t0 = clock.now
    lines = [_line("memory:t:9", 1, "1", t0), _line("memory:t:9", 2, "2", t0)]
    apply_page(any_store, pipeline, _page(lines, {"memory:t:9"}, t0), now=t0)
    t1 = clock.advance(60)
    # line 2 edited to a quantity the ledger cannot keep: quarantined, still in the document
    edited = [_line("memory:t:9", 1, "1", t1), _line("memory:t:9", 2, "2.0000001", t1)]
    result = apply_page(any_store, pipeline, _page(edited, {"memory:t:9"}, t1), now=t1)
    assert (result.rejected, result.withdrawn) == (1, 0)
    assert any_store.levels(pipeline)[StockKey("M2", "CK001")] == 2


@pytest.mark.parametrize("reject_key", ["memory:t:7:2", None])
def test_a_line_the_source_quarantined_keeps_its_document_from_being_judged(
    any_store: StateStore, pipeline: str, clock: Clock, reject_key: str | None
) -> None:
    """The source could not read line 2 (a RejectedRecord, not a movement): the line is
    still in the document, so the page names it complete but nothing is withdrawn. A
    reject without a key could be any document's line: no document is judged."""
    t0 = clock.now
    lines = [_line("memory:t:7", 1, "1", t0), _line("memory:t:7", 2, "2", t0)]
    apply_page(any_store, pipeline, _page(lines, {"memory:t:7"}, t0), now=t0)
    t1 = clock.advance(60)
    reject = RejectedRecord(stream="s", reason="unreadable qty", raw={}, key=reject_key)
    page = Page(
        "s",
        [_line("memory:t:7", 1, "1", t1)],
        Cursor(t1, "z"),
        rejects=[reject],
        complete_documents=frozenset({"memory:t:7"}),
    )
    result = apply_page(any_store, pipeline, page, now=t1)
    assert (result.rejected, result.withdrawn) == (1, 0)
    assert any_store.levels(pipeline)[StockKey("M2", "CK001")] == 2


def test_pages_without_complete_documents_never_look_documents_up(
    store: StateStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Tx, pipeline: str, documents: object) -> None:
        raise AssertionError("document lines looked up on the hot path")

    monkeypatch.setattr(Tx, "load_document_lines", refuse)
    lines = [_line("memory:t:3", n, "1", clock.now) for n in (1, 2)]
    apply_page(store, "p", Page("s", lines, None), now=clock.now)
    apply_page(store, "p", Page("s", lines[:1], None), now=clock.now + timedelta(seconds=1))
    assert store.levels("p") == {StockKey("M1", "CK001"): 1, StockKey("M2", "CK001"): 1}

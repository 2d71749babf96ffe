"""The SQL source over real databases (SQLite file, PostgreSQL, MariaDB), generic layout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, text
from sqlalchemy.exc import DBAPIError

from connectors.sql.engine import translate
from connectors.sql.mapping import POSITION_EPOCH
from connectors.sql.source import SqlSource
from sync.errors import ConfigError, PermanentError
from sync.ledger import apply_page
from sync.model import Cursor, Page, StockKey
from sync.pull import PullOptions, pull_stream
from sync.state import StateStore
from tests.conftest import Clock
from tests.sql.conftest import T0, Erp, document_stream, journal_stream, local, settings_for


@pytest.fixture
def state() -> Iterator[StateStore]:
    s = StateStore("sqlite://")
    s.upgrade()
    yield s
    s.close()


def open_source(erp: Erp, **overrides: Any) -> SqlSource:
    return SqlSource(settings_for(erp, **overrides))


def journal_rows(first: int, last: int) -> list[dict[str, Any]]:
    """Receipts of 3 on odd ids, shipments of 1 on even ids; every 7th is landed costs (69)."""
    rows = []
    for i in range(first, last + 1):
        ttype = 69 if i % 7 == 0 else (20 if i % 2 else 15)
        rows.append(
            {
                "id": i,
                "item": f"A{i % 3}",
                "wh": "W1",
                "qin": Decimal(3) if ttype == 20 else Decimal(0),
                "qout": Decimal(1) if ttype == 15 else Decimal(0),
                "ttype": ttype,
                "ddate": date(2026, 2, 1) + timedelta(days=i % 20),
                "ref": f"R{i}",
            }
        )
    return rows


def journal_levels(rows: list[dict[str, Any]]) -> dict[StockKey, Decimal]:
    levels: dict[StockKey, Decimal] = {}
    for r in rows:
        if r["ttype"] == 69:
            continue
        key = StockKey(r["item"], r["wh"])
        levels[key] = levels.get(key, Decimal(0)) + r["qin"] - r["qout"]
    return {k: v for k, v in levels.items() if v}


def nonzero(levels: dict[StockKey, Decimal]) -> dict[StockKey, Decimal]:
    return {k: v for k, v in levels.items() if v}


def test_journal_pages_and_resume_with_overlap(erp: Erp, state: StateStore, clock: Clock) -> None:
    rows = journal_rows(1, 25)
    erp.post(rows)
    source = open_source(erp)
    try:
        pages = list(source.pull("journal", None, 10))
        assert [p.cursor for p in pages] == [
            Cursor(POSITION_EPOCH, f"{n:020d}") for n in (10, 20, 25)
        ]
        keys = [m.key for p in pages for m in p.movements]
        assert keys == [f"sql:journal:{i}:0" for i in range(1, 26) if i % 7]  # 69 left out
        first = pages[0].movements[0]
        assert (first.sku, first.warehouse, first.qty, first.doc_no) == ("A1", "W1", 3, "R1")
        assert first.kind == "receipt" and pages[0].movements[1].qty == -1

        report = pull_stream(state, source, "p", "journal", now=clock, options=PullOptions(10))
        assert report.received == 25 - 3
        assert state.cursor("p", "journal") == Cursor(POSITION_EPOCH, f"{25:020d}")
        more = journal_rows(26, 31)
        erp.post(more)
        # the stored position comes back as it is; the pull re-reads 5 positions behind it
        assert source.resume_cursor("journal", state.cursor("p", "journal"), 120.0) == Cursor(
            POSITION_EPOCH, f"{25:020d}"
        )
        again = list(source.pull("journal", state.cursor("p", "journal"), 100))
        assert again[0].movements[0].key == "sql:journal:22:0"  # 21 is landed costs
        pull_stream(state, source, "p", "journal", now=clock, options=PullOptions(10))
        assert state.cursor("p", "journal") == Cursor(POSITION_EPOCH, f"{31:020d}")
        assert nonzero(state.levels("p")) == journal_levels(rows + more)
    finally:
        source.close()


def doc_line(doc: int, line: int, qty: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "doc": doc,
        "line": line,
        "item": f"B{line % 2}",
        "wh": "W1",
        "qty": Decimal(qty),
        "kind": "in" if qty >= 0 else "out",
        "ddate": local(at),
        "ts": local(at),
        "ver": extra.pop("ver", doc * 10 + line),
        "audited": local(at),
        **extra,
    }


def test_document_pages_are_whole_documents(erp: Erp) -> None:
    lines = [doc_line(d, n, d + n, T0) for d in range(1, 6) for n in range(1, 3)]
    lines += [doc_line(6, n, 1, T0) for n in range(1, 6)]  # longer than a page: alone
    lines.append(doc_line(7, 1, 0, T0, kind="none"))  # moves no stock: inactive
    lines.append(doc_line(8, 1, 1, T0, item=None))  # quarantined: doc 8 not complete
    erp.put_lines(lines)
    source = open_source(erp)
    try:
        pages = list(source.pull("docs", None, 3))
    finally:
        source.close()
    seen: list[str] = []
    for page in pages:
        docs = {m.key.rsplit(":", 1)[0] for m in page.movements}
        rejected = {r.key.rsplit(":", 1)[0] for r in page.rejects if r.key}
        assert page.complete_documents == docs - rejected
        seen += sorted(docs | rejected)
        assert len(page.movements) + len(page.rejects) <= 3 or len(docs | rejected) == 1
    assert seen == [f"sql:docs:{d}" for d in range(1, 9)]
    assert all(p.cursor is None for p in pages[:-1])
    assert pages[-1].cursor == Cursor(T0, "")
    reject = pages[-1].rejects[0]
    assert (reject.field, reject.key) == ("item", "sql:docs:8:1")
    ignored = [m for p in pages for m in p.movements if m.key == "sql:docs:7:1"]
    assert len(ignored) == 1 and not ignored[0].active


def test_removed_line_is_withdrawn(erp: Erp, state: StateStore, clock: Clock) -> None:
    erp.put_lines([doc_line(1, n, 5, T0) for n in range(1, 4)])
    source = open_source(erp)
    try:
        pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(100))
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 10, StockKey("B0", "W1"): 5}
        clock.advance(600)
        erp.remove_line(1, 3, clock.now, 99)
        clock.advance(600)
        report = pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(100))
        assert report.withdrawn == 1
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 5, StockKey("B0", "W1"): 5}
    finally:
        source.close()


def test_edits_between_pages_end_with_ledger_equal_to_table(
    erp: Erp, state: StateStore, clock: Clock
) -> None:
    erp.put_lines([doc_line(d, 1, d, T0 - timedelta(hours=1)) for d in range(1, 21)])
    source = open_source(erp)
    options = PullOptions(page_size=4, overlap_s=120)
    edited = []

    def edit_once(_: object) -> None:
        if edited:
            return
        edited.append(True)
        clock.advance(30)
        erp.set_line(2, 1, qty=Decimal(50), ts=local(clock.now))  # already read: stamp moves on
        erp.set_line(19, 1, qty=Decimal(70), ts=local(clock.now))  # ahead of the pull
        erp.set_line(3, 1, audited=None, ts=local(clock.now))  # un-audited behind the pull

    try:
        pull_stream(state, source, "p", "docs", now=clock, options=options, on_page=edit_once)
        table = {StockKey(*k): v for k, v in erp.line_levels().items()}
        assert edited and nonzero(state.levels("p")) != table  # doc 2 was read before its edit
        clock.advance(600)
        pull_stream(state, source, "p", "docs", now=clock, options=options)
    finally:
        source.close()
    table = {StockKey(*k): v for k, v in erp.line_levels().items()}
    assert nonzero(state.levels("p")) == table
    assert table[StockKey("B1", "W1")] == sum(range(1, 21)) - 2 - 3 - 19 + 50 + 70


def test_a_version_cursor_stops_at_the_highest_version_the_pull_began_under(
    erp: Erp, state: StateStore, clock: Clock
) -> None:
    """Document 1 is edited behind the pull (version 10), then document 4, not reached yet
    (version 11, read by this pull): the cursor is 5, the highest when the pull began, not 11,
    which would pass the edit of document 1 (architecture §4.6)."""
    stream = document_stream(erp, updated="ver", updated_type="version")
    erp.put_lines([doc_line(d, 1, 1, T0, ver=d) for d in range(1, 6)])
    source = open_source(erp, streams=[stream])
    try:
        pages = source.pull("docs", None, 1)
        first = next(pages)
        assert [m.key for m in first.movements] == ["sql:docs:1:1"]
        erp.set_line(1, 1, qty=Decimal(9), ver=10)
        erp.set_line(4, 1, qty=Decimal(8), ver=11)
        rest = list(pages)
        read = {m.key: m.qty for p in [first, *rest] for m in p.movements}
        assert read == {f"sql:docs:{d}:1": Decimal(8 if d == 4 else 1) for d in range(1, 6)}
        assert [p.cursor for p in rest] == [None] * (len(rest) - 1) + [
            Cursor(POSITION_EPOCH, f"{5:020d}")
        ]
        for page in [first, *rest]:
            apply_page(state, "p", page, now=clock())
        again = list(source.pull("docs", state.cursor("p", "docs"), 100))
        assert sorted(m.key for p in again for m in p.movements) == [
            "sql:docs:1:1",
            "sql:docs:4:1",
        ]
        assert again[-1].cursor == Cursor(POSITION_EPOCH, f"{11:020d}")
        for page in again:
            apply_page(state, "p", page, now=clock())
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 9 + 1 + 1 + 8 + 1}
    finally:
        source.close()


def test_a_version_cursor_is_no_later_than_the_newest_version_read(erp: Erp) -> None:
    """The document holding the highest version is deleted during the pull: the cursor is
    the newest version read (4), not the start's highest (5), which no line carries any more."""
    stream = document_stream(erp, updated="ver", updated_type="version")
    erp.put_lines([doc_line(d, 1, 1, T0, ver=d) for d in range(1, 6)])
    source = open_source(erp, streams=[stream])
    try:
        pages = source.pull("docs", None, 1)
        next(pages)
        with erp.writer.begin() as conn:
            conn.execute(delete(erp.lines).where(erp.lines.c.doc == 5))
        rest = list(pages)
        assert [m.key for p in rest for m in p.movements] == [f"sql:docs:{d}:1" for d in (2, 3, 4)]
        assert rest[-1].cursor == Cursor(POSITION_EPOCH, f"{4:020d}")
    finally:
        source.close()


def test_a_version_pull_that_began_on_an_empty_relation_keeps_its_cursor(
    erp: Erp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines saved between the read of the highest version (none: the relation was empty)
    and the first page are read, and the cursor stays: the next pull reads them again."""
    stream = document_stream(erp, updated="ver", updated_type="version")
    source = open_source(erp, streams=[stream])
    read_ceiling = source._version_ceiling

    def then_save(s: Any) -> int | None:
        ceiling = read_ceiling(s)
        erp.put_lines([doc_line(d, 1, 1, T0, ver=d) for d in (1, 2)])
        return ceiling

    monkeypatch.setattr(source, "_version_ceiling", then_save)
    try:
        pages = list(source.pull("docs", None, 100))
        assert [m.key for p in pages for m in p.movements] == ["sql:docs:1:1", "sql:docs:2:1"]
        assert pages[-1].cursor is None
    finally:
        source.close()


def test_version_cursor(erp: Erp, state: StateStore, clock: Clock) -> None:
    stream = document_stream(erp, updated="ver", updated_type="version", overlap_versions=1)
    erp.put_lines([doc_line(d, 1, 2, T0, ver=d) for d in range(1, 6)])
    source = open_source(erp, streams=[stream])
    try:
        pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(2))
        stored = state.cursor("p", "docs")
        assert stored == Cursor(POSITION_EPOCH, f"{5:020d}")
        assert source.resume_cursor("docs", stored, 120.0) == stored
        erp.set_line(2, 1, qty=Decimal(9), ver=6)
        pages = list(source.pull("docs", stored, 100))
        # versions > 5 − 1: doc 5 (overlap) and doc 2 (changed)
        assert sorted(m.key for p in pages for m in p.movements) == [
            "sql:docs:2:1",
            "sql:docs:5:1",
        ]
        assert pages[-1].cursor == Cursor(POSITION_EPOCH, f"{6:020d}")
        pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(2))
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 2 * 4 + 9}
    finally:
        source.close()


def test_a_date_edited_earlier_on_a_version_stream_is_followed(
    erp: Erp, state: StateStore, clock: Clock
) -> None:
    """A version stream's lines are stamped by their row version: an edit that moves a line's
    date back (and its quantity) is newer than the read before, not a stale re-delivery."""
    stream = document_stream(erp, updated="ver", updated_type="version")
    erp.put_lines([doc_line(1, 1, 4, T0, ver=1), doc_line(2, 1, 6, T0, ver=2)])
    source = open_source(erp, streams=[stream])
    try:
        pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(100))
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 10}
        earlier = T0 - timedelta(days=20)
        erp.set_line(1, 1, qty=Decimal(9), ddate=local(earlier), ver=3)
        pages = list(source.pull("docs", state.cursor("p", "docs"), 100))
        [moved] = [m for p in pages for m in p.movements]
        assert moved.occurred_at == earlier
        assert moved.source_updated_at == POSITION_EPOCH + timedelta(microseconds=3)
        report = pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(100))
        assert report.updated == 1
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 15}
    finally:
        source.close()


def test_a_document_emptied_between_the_reads_of_a_version_pull_is_withdrawn(
    erp: Erp, state: StateStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document found changed whose lines are gone by the second read of its batch: its
    stored lines are withdrawn, also on a version stream, whose cursor (POSITION_EPOCH) is no
    stamp to judge them by. (MariaDB reads both in one snapshot: the lines come back
    un-audited instead; the level is the same.)"""
    stream = document_stream(erp, updated="ver", updated_type="version")
    erp.put_lines([doc_line(d, n, 2, T0, ver=10 * d + n) for d in (1, 2, 3) for n in (1, 2)])
    source = open_source(erp, streams=[stream])
    queries = source._queries["docs"]
    lines_of = queries.document_lines

    def delete_first(docs: Any) -> Any:
        if [3] in [list(d) for d in docs]:
            with erp.writer.begin() as conn:
                conn.execute(erp.lines.delete().where(erp.lines.c.doc == 3))
        return lines_of(docs)

    try:
        pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(100))
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 6, StockKey("B0", "W1"): 6}
        erp.set_line(3, 1, audited=None, ver=40)  # un-audited, then deleted
        erp.set_line(3, 2, audited=None, ver=41)
        erp.set_line(2, 1, qty=Decimal(5), ver=42)  # read on the same page, its cursor
        monkeypatch.setattr(queries, "document_lines", delete_first)
        report = pull_stream(state, source, "p", "docs", now=clock, options=PullOptions(100))
        if erp.backend != "mysql":
            assert (report.pages, report.received, report.withdrawn) == (2, 2, 2)
        assert nonzero(state.levels("p")) == {StockKey("B1", "W1"): 7, StockKey("B0", "W1"): 4}
        assert state.cursor("p", "docs") == Cursor(POSITION_EPOCH, f"{42:020d}")
    finally:
        source.close()


def test_keys_in_window(erp: Erp) -> None:
    old, new = T0 - timedelta(days=40), T0 - timedelta(days=3)
    erp.put_lines([doc_line(1, 1, 1, old), doc_line(2, 1, 1, new), doc_line(2, 2, 1, new)])
    erp.post(journal_rows(1, 3))
    source = open_source(erp)
    try:
        assert sorted(source.keys_in_window("docs", T0 - timedelta(days=10))) == [
            "sql:docs:2:1",
            "sql:docs:2:2",
        ]
        window = sorted(source.keys_in_window("journal", datetime(2026, 2, 3, tzinfo=T0.tzinfo)))
        assert window == ["sql:journal:2:0", "sql:journal:3:0"]  # dated 2026-02-02 (a day early)
    finally:
        source.close()


def test_on_hand_and_reserved(erp: Erp) -> None:
    erp.set_stock(
        [
            {"item": "A", "wh": "W1", "lot": "L1", "qty": Decimal("1.5"), "res": Decimal(1)},
            {"item": "A", "wh": "W1", "lot": "L2", "qty": Decimal("2.25"), "res": Decimal(0)},
            {"item": "B ", "wh": "W2", "lot": "L1", "qty": Decimal(4), "res": Decimal(0)},
        ]
    )
    plain = open_source(erp)
    reserved = {"table": erp.stock.name, "product": "item", "warehouse": "wh", "qty": "res"}
    with_reserved = open_source(erp, reserved=reserved)
    try:
        on_hand = {r.stock_key: r.qty for r in plain.on_hand()}
        assert on_hand == {StockKey("A", "W1"): Decimal("3.75"), StockKey("B", "W2"): 4}
        assert plain.reserved() is None
        assert [(r.stock_key, r.qty) for r in with_reserved.reserved() or []] == [
            (StockKey("A", "W1"), 1)
        ]
    finally:
        plain.close()
        with_reserved.close()


def test_check_names_stream_and_missing_column(erp: Erp) -> None:
    good = open_source(erp)
    bad = open_source(erp, streams=[journal_stream(erp), document_stream(erp, warehouse="whs")])
    try:
        assert "2 stream(s)" in good.check()
        with pytest.raises(ConfigError) as info:
            bad.check()
    finally:
        good.close()
        bad.close()
    [problem] = info.value.problems
    assert problem.path == "erp.streams[1].warehouse"
    assert "'docs'" in problem.message and "'whs'" in problem.message
    for returned in ("doc", "line", "item", "wh", "qty", "ts", "audited"):
        assert returned in problem.message


def test_check_names_a_missing_table(erp: Erp) -> None:
    source = open_source(erp, streams=[journal_stream(erp, table="no_such_table_x")])
    try:
        with pytest.raises(ConfigError) as info:
            source.check()
    finally:
        source.close()
    assert info.value.problems[0].path == "erp.streams[0]"
    assert "journal" in info.value.problems[0].message


def test_writes_are_refused(erp: Erp) -> None:
    source = open_source(erp)
    statement = text(
        f"INSERT INTO {erp.stock.name} (item, wh, lot, qty, res) VALUES ('X', 'W', 'L', 1, 0)"
    )
    try:
        with pytest.raises(DBAPIError) as info, source.engine.begin() as conn:
            conn.execute(statement)
    finally:
        source.close()
    assert isinstance(translate(info.value, "erp.on_hand"), PermanentError)
    with erp.writer.connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {erp.stock.name}")).scalar() == 0


SLOW = {
    "sqlite": "SELECT 'a' AS item, 'w' AS wh, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
    "SELECT x + 1 FROM c WHERE x < 100000000) SELECT COUNT(*) FROM c) AS qty",
    "postgresql": "SELECT 'a' AS item, 'w' AS wh, 1 AS qty FROM (SELECT pg_sleep(5)) AS s",
    "mysql": "SELECT 'a' AS item, 'w' AS wh, SLEEP(5) AS qty",
}


def test_statement_timeout_is_transient(erp: Erp) -> None:
    from sync.errors import TransientError

    on_hand = {"query": SLOW[erp.backend], "product": "item", "warehouse": "wh", "qty": "qty"}
    source = open_source(erp, on_hand=on_hand, statement_timeout_s=0.5)
    started = datetime.now()
    try:
        with pytest.raises(TransientError):
            list(source.on_hand())
    finally:
        source.close()
    assert datetime.now() - started < timedelta(seconds=4)


def test_a_page_applies_through_the_ledger_with_a_position_cursor(
    erp: Erp, state: StateStore, clock: Clock
) -> None:
    """The core's cap at run start − overlap never replaces a position cursor."""
    erp.post(journal_rows(1, 3))
    source = open_source(erp)
    try:
        [page] = list(source.pull("journal", None, 10))
    finally:
        source.close()
    apply_page(state, "p", page, now=clock(), cursor_limit=clock() - timedelta(seconds=120))
    assert state.cursor("p", "journal") == page.cursor
    assert isinstance(page, Page)


def test_an_unreachable_database_is_transient_and_hides_the_password() -> None:
    from connectors.sql.settings import SqlSettings
    from sync.errors import TransientError

    password = "Erp-pw-never-shown-31"
    settings = SqlSettings.model_validate(
        {
            "url": f"postgresql://erp:{password}@127.0.0.1:1/erp",
            "streams": [
                {
                    "name": "j",
                    "mode": "journal",
                    "table": "t",
                    "key": ["id"],
                    "position": "id",
                    "product": "p",
                    "warehouse": "w",
                    "qty": "q",
                    "kind": "receipt",
                    "date": "d",
                }
            ],
            "on_hand": {"table": "s", "product": "p", "warehouse": "w", "qty": "q"},
        }
    )
    source = SqlSource(settings)
    try:
        with pytest.raises(TransientError) as info:
            list(source.pull("j", None, 10))
    finally:
        source.close()
    assert password not in str(info.value) and "erp.streams[0]" in str(info.value)

"""Contract for ErpSource implementations.

Fixtures a subclass provides:
- ``contract_source``: an ErpSource over data with movements in at least one stream,
  spread over more than one page of ``contract_page_size``.
- ``contract_page_size``: int (small, so paging is exercised).
- ``contract_faults``: a list of ``(label, inject, expected_error_type)`` where
  ``inject()`` returns a context manager under which the next pull must raise.
- ``contract_remove_line`` (optional; a source that declares support for line
  removal provides it): a callable that removes one line from a document with
  several lines of the contract data, as a user's edit of the document in the ERP
  would, and returns the removed line's movement key. Without it the
  line-removal test is skipped.
- ``contract_reserve`` (optional; a source that reports reserved stock provides it):
  a callable ``(qty) -> (key, release)`` that reserves ``qty`` of a key the contract
  data holds stock of, as an order would in the ERP, and returns that key and a
  callable that releases the reservation (a cancellation). Without it the source
  must report None.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sync.model import Cursor, Movement, MovementKind, OnHand, Reserved, StockKey, document_key
from sync.ports import ErpSource
from sync.pull import PullOptions
from sync.pull import pull_all as pull_into_ledger
from sync.state import StateStore

FaultCase = tuple[str, Callable[[], AbstractContextManager[Any]], type[BaseException]]


def pull_all(
    source: ErpSource, page_size: int, since: Cursor | None = None
) -> dict[str, list[tuple[Cursor | None, list[Movement]]]]:
    return {
        stream: [(p.cursor, list(p.movements)) for p in source.pull(stream, since, page_size)]
        for stream in source.streams()
    }


def flat(pages: dict[str, list[tuple[Cursor | None, list[Movement]]]]) -> list[Movement]:
    return [m for stream_pages in pages.values() for _, ms in stream_pages for m in ms]


class ErpSourceContract:
    def test_is_an_erp_source(self, contract_source: ErpSource) -> None:
        assert isinstance(contract_source, ErpSource)
        assert contract_source.streams(), "a source has at least one stream"
        assert list(contract_source.streams()) == list(contract_source.streams())

    def test_full_pull_is_repeatable(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        first = flat(pull_all(contract_source, contract_page_size))
        second = flat(pull_all(contract_source, contract_page_size))
        assert first, "the contract data set must produce movements"
        assert {(m.key, m.content_hash()) for m in first} == {
            (m.key, m.content_hash()) for m in second
        }

    def test_keys_are_unique_and_prefixed(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        movements = flat(pull_all(contract_source, contract_page_size))
        keys = [m.key for m in movements]
        assert len(keys) == len(set(keys)), "a static source yields each key once per pull"
        for m in movements:
            assert m.key.startswith(f"{contract_source.name}:"), m.key
            assert isinstance(m.qty, Decimal)
            assert isinstance(m.kind, MovementKind)
            assert m.sku and m.warehouse

    def test_cursors_advance_monotonically(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        pulled = pull_all(contract_source, contract_page_size)
        assert any(len(pages) > 1 for pages in pulled.values()), "data must span several pages"
        for stream, pages in pulled.items():
            cursors = [c for c, _ in pages if c is not None]
            assert cursors == sorted(cursors), f"{stream}: cursors went backwards"
            if pages:
                assert pages[-1][0] is not None, f"{stream}: the last page sets the position"
            # a page may leave the position alone (cursor None: a source that moves it only
            # at the end of a pull); a position, once given, covers every line read so far
            read: list[Movement] = []
            for cursor, movements in pages:
                read.extend(movements)
                for m in read if cursor is not None else ():
                    assert cursor is not None
                    assert m.source_updated_at <= cursor.updated_at, (stream, m.key)

    def test_pull_since_last_cursor_returns_only_newer(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        for stream in contract_source.streams():
            pages = list(contract_source.pull(stream, None, contract_page_size))
            cursors = [p.cursor for p in pages if p.cursor is not None]
            if not cursors:
                continue
            last = cursors[-1]
            again = [
                m
                for p in contract_source.pull(stream, last, contract_page_size)
                for m in p.movements
            ]
            assert all(m.source_updated_at >= last.updated_at for m in again), stream
            everything = {m.key for p in pages for m in p.movements}
            assert {m.key for m in again} <= everything

    def test_window_lists_every_recent_key(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        movements = flat(pull_all(contract_source, contract_page_size))
        oldest = min(m.occurred_at for m in movements)
        since = oldest - timedelta(days=1)
        listed: set[str] = set()
        for stream in contract_source.streams():
            listed |= set(contract_source.keys_in_window(stream, since))
        assert {m.key for m in movements} <= listed

    def test_on_hand_is_typed(self, contract_source: ErpSource) -> None:
        rows = list(contract_source.on_hand())
        assert rows, "the contract data set has stock on hand"
        seen: set[tuple[str, str]] = set()
        for row in rows:
            assert isinstance(row, OnHand)
            assert isinstance(row.qty, Decimal)
            assert (row.sku, row.warehouse) not in seen, "one row per stock key"
            seen.add((row.sku, row.warehouse))

    def test_reserved_is_a_snapshot_or_none(
        self, contract_source: ErpSource, request: pytest.FixtureRequest
    ) -> None:
        """``reserved()``: None for an ERP without reservations, else typed items whose
        quantities per key add up; a reservation shows, and a release drops it out."""
        reserve = _optional_fixture(request, "contract_reserve")
        if reserve is None:
            assert contract_source.reserved() is None, (
                "a source that reports reservations provides contract_reserve"
            )
            return

        def snapshot() -> dict[StockKey, Decimal]:
            items = contract_source.reserved()
            assert items is not None, "this source reports reservations"
            totals: dict[StockKey, Decimal] = {}
            for item in items:
                assert isinstance(item, Reserved) and isinstance(item.qty, Decimal)
                totals[item.stock_key] = totals.get(item.stock_key, Decimal(0)) + item.qty
            return {k: q for k, q in totals.items() if q}

        before = snapshot()
        key, release = reserve(Decimal(1))
        held = before.get(key, Decimal(0))
        assert snapshot() == {**before, key: held + 1}
        release()
        assert snapshot() == before

    def test_errors_map_to_typed_errors(
        self, contract_source: ErpSource, contract_page_size: int, contract_faults: list[FaultCase]
    ) -> None:
        assert contract_faults, "a connector declares at least one fault case"
        stream = contract_source.streams()[0]
        for label, inject, expected in contract_faults:
            with inject(), pytest.raises(expected):
                list(contract_source.pull(stream, None, contract_page_size))
            # and the source recovers once the fault is gone
            assert list(contract_source.pull(stream, None, contract_page_size)) is not None, label

    def test_a_line_removed_from_a_document_is_withdrawn(
        self, contract_source: ErpSource, contract_page_size: int, request: pytest.FixtureRequest
    ) -> None:
        """Issue 13 item 2: the next pull after a line's removal withdraws it from the ledger."""
        try:
            remove_line: Callable[[], str] = request.getfixturevalue("contract_remove_line")
        except pytest.FixtureLookupError:
            pytest.skip("the source provides no contract_remove_line (no multi-line documents)")
        store = StateStore("sqlite://")
        store.upgrade()
        options = PullOptions(page_size=contract_page_size)

        def now() -> datetime:
            return datetime.now(UTC)

        try:
            pull_into_ledger(store, contract_source, "contract", now=now, options=options)
            removed = remove_line()
            before = store.movement("contract", removed)
            assert before is not None and before.active, "the removed line was pulled first"
            siblings = {
                key: store.movement("contract", key)
                for key in store.movement_keys("contract")
                if document_key(key) == document_key(removed) and key != removed
            }
            assert siblings, "the line's document has other lines"
            stock_key = StockKey(before.sku, before.warehouse)
            level = store.levels("contract")[stock_key]

            pull_into_ledger(store, contract_source, "contract", now=now, options=options)

            after = store.movement("contract", removed)
            assert after is not None and not after.active and after.effective_qty == 0
            assert store.levels("contract")[stock_key] == level - before.qty
            for key, was in siblings.items():
                sibling = store.movement("contract", key)
                assert sibling is not None and was is not None, key
                assert (sibling.active, sibling.qty) == (was.active, was.qty), key
        finally:
            store.close()


def _optional_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    """The value of fixture ``name``, or None when the test class does not define it."""
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return None

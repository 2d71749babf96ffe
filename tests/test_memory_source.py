"""The in-memory ERP passes the shared ErpSource contract, line removal included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

import pytest

from connectors.memory.source import MemoryErp
from sync.errors import TransientError
from sync.model import Cursor, Movement, MovementKind, StockKey, document_key
from tests.conftest import Clock
from tests.contract.erp import ErpSourceContract, FaultCase


def _document(erp: MemoryErp, doc: int, lines: int) -> None:
    now = erp.now()
    for line in range(1, lines + 1):
        erp.put(
            Movement(
                f"memory:count_gain:{doc}:{line}",
                MovementKind.COUNT_GAIN,
                f"S{line}",
                "W1",
                Decimal(f"{line}.5"),
                now,
                now,
                f"CG{doc}",
            )
        )


def _documents(now: Callable[[], datetime] | None = None) -> MemoryErp:
    erp = MemoryErp(now=now)
    for doc in range(1, 5):
        _document(erp, doc, 3)
    erp.set_opening("S1", "W1", 10)
    return erp


@pytest.fixture
def contract_source() -> MemoryErp:
    return _documents()


@pytest.fixture
def contract_page_size() -> int:
    return 2


@contextmanager
def _failing(erp: MemoryErp) -> Iterator[None]:
    erp.fail_next = TransientError("injected")
    yield


@pytest.fixture
def contract_faults(contract_source: MemoryErp) -> list[FaultCase]:
    return [("transient failure", lambda: _failing(contract_source), TransientError)]


@pytest.fixture
def contract_remove_line(contract_source: MemoryErp) -> Callable[[], str]:
    def remove() -> str:
        contract_source.delete_line("memory:count_gain:2:3")
        return "memory:count_gain:2:3"

    return remove


@pytest.fixture
def contract_reserve(
    contract_source: MemoryErp,
) -> Callable[[Decimal], tuple[StockKey, Callable[[], None]]]:
    def reserve(qty: Decimal) -> tuple[StockKey, Callable[[], None]]:
        key = next(iter(contract_source.on_hand())).stock_key
        contract_source.reserve(key.sku, key.warehouse, qty)
        return key, lambda: contract_source.reserve(key.sku, key.warehouse, 0)

    return reserve


class TestMemoryContract(ErpSourceContract):
    pass


class TestMemoryWithoutReservationsContract(ErpSourceContract):
    """An ERP that keeps no reservations: ``reserved()`` says so with None."""

    @pytest.fixture
    def contract_source(self, contract_source: MemoryErp) -> MemoryErp:
        contract_source.keeps_reservations = False
        return contract_source

    @pytest.fixture
    def contract_reserve(self) -> None:
        return None


def _complete(erp: MemoryErp, since: Cursor | None, page_size: int) -> list[frozenset[str]]:
    return [p.complete_documents for p in erp.pull("moves", since, page_size)]


def test_pages_name_the_documents_they_carry_whole(contract_source: MemoryErp) -> None:
    # three lines per document: a page of 2 grows to the document's end
    pages = list(contract_source.pull("moves", None, 2))
    assert [len(p.movements) for p in pages] == [3, 3, 3, 3]
    for page in pages:
        assert page.complete_documents == {document_key(m.key) for m in page.movements}


def test_an_edit_of_one_line_restamps_its_document_which_is_read_whole(clock: Clock) -> None:
    erp = _documents(clock)
    clock.advance(60)
    line = next(m for m in erp.lines() if m.key == "memory:count_gain:1:2")
    edited = erp.put(line._replace(qty=Decimal(7)))
    changed = list(erp.pull("moves", Cursor(edited.source_updated_at, ""), 100))
    assert sorted(m.key for p in changed for m in p.movements) == [
        "memory:count_gain:1:1",
        "memory:count_gain:1:2",
        "memory:count_gain:1:3",
    ]
    assert {m.source_updated_at for p in changed for m in p.movements} == {clock.now}
    assert [p.complete_documents for p in changed] == [{"memory:count_gain:1"}]


def test_a_document_edited_after_losing_a_line_comes_whole_in_one_page(clock: Clock) -> None:
    """Found by the ledger property: a line removed (siblings restamped), another document
    created, then one sibling edited. With per-line stamps that sibling sorted after the
    other document, the pull split the document over two pages, no page named it complete
    and the removed line stayed counted."""
    erp = _documents(clock)
    since = Cursor(clock.advance(60), "")
    erp.delete_line("memory:count_gain:2:1")
    clock.advance(60)
    _document(erp, 5, 2)
    clock.advance(60)
    line = next(m for m in erp.lines() if m.key == "memory:count_gain:2:2")
    erp.put(line._replace(sku="S9"))
    pages = list(erp.pull("moves", since, 2))
    assert [sorted(m.key for m in p.movements) for p in pages] == [
        ["memory:count_gain:5:1", "memory:count_gain:5:2"],
        ["memory:count_gain:2:2", "memory:count_gain:2:3"],
    ]
    assert [p.complete_documents for p in pages] == [
        {"memory:count_gain:5"},
        {"memory:count_gain:2"},
    ]


def test_removing_a_line_restamps_its_document_and_an_empty_one_is_still_named(
    clock: Clock,
) -> None:
    contract_source = _documents(clock)
    clock.advance(60)
    since = Cursor(clock.now, "")
    contract_source.delete_line("memory:count_gain:3:1")
    [after] = list(contract_source.pull("moves", since, 100))
    assert sorted(m.key for m in after.movements) == [
        "memory:count_gain:3:2",
        "memory:count_gain:3:3",
    ]
    assert after.complete_documents == {"memory:count_gain:3"}
    assert after.cursor is not None
    clock.advance(60)
    contract_source.delete_line("memory:count_gain:3:2")
    contract_source.delete_line("memory:count_gain:3:3")
    [emptied] = list(contract_source.pull("moves", after.cursor, 100))
    assert list(emptied.movements) == []
    assert emptied.complete_documents == {"memory:count_gain:3"}
    assert emptied.cursor is not None and emptied.cursor > after.cursor

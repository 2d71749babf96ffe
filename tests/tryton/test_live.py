"""The Tryton source against a real trytond: fold of pulled moves == Tryton's on-hand."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from connectors.tryton.source import TrytonSettings, TrytonSource, build
from sync.errors import PermanentError, TransientError
from sync.model import Cursor, Movement, MovementKind, StockKey
from sync.ports import ConnectorContext
from tests.contract.erp import ErpSourceContract, FaultCase
from tests.tryton import scenario
from tests.tryton import server as tryton

pytestmark = pytest.mark.tryton

Ledger = dict[str, Movement]


def apply(ledger: Ledger, source: TrytonSource, since: Cursor | None, page_size: int) -> Cursor:
    """Pull into ``ledger`` (upsert by key); returns the last cursor (``since`` if none)."""
    last = since
    for page in source.pull("moves", since, page_size):
        assert page.rejects == [] or list(page.rejects) == []
        for m in page.movements:
            ledger[m.key] = m
        if page.cursor is not None:
            assert last is None or page.cursor >= last
            last = page.cursor
    assert last is not None
    return last


def fold(movements: Iterable[Movement]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = {}
    for m in movements:
        key = (m.sku, m.warehouse)
        totals[key] = totals.get(key, Decimal(0)) + m.effective_qty
    return {k: v for k, v in totals.items() if v != 0}


def on_hand(source: TrytonSource) -> dict[tuple[str, str], Decimal]:
    return {(r.sku, r.warehouse): r.qty for r in source.on_hand()}


def back(cursor: Cursor, seconds: float = 2.0) -> Cursor:
    """What the core does before an incremental pull: move the cursor back by an overlap."""
    return Cursor(cursor.updated_at - dt.timedelta(seconds=seconds), cursor.tie_break)


def test_full_pull_folds_to_trytons_own_on_hand(
    tryton_source: TrytonSource, tryton_proteus: Any
) -> None:
    ledger: Ledger = {}
    apply(ledger, tryton_source, None, 4)
    expected = scenario.warehouse_quantities(tryton_proteus)
    assert on_hand(tryton_source) == expected
    assert fold(ledger.values()) == expected
    kinds = {m.kind for m in ledger.values()}
    assert kinds >= {
        MovementKind.RECEIPT,
        MovementKind.SHIPMENT,
        MovementKind.CUSTOMER_RETURN,
        MovementKind.SUPPLIER_RETURN,
        MovementKind.TRANSFER_OUT,
        MovementKind.TRANSFER_IN,
        MovementKind.COUNT_LOSS,
        MovementKind.COUNT_GAIN,
    }
    assert {m.warehouse for m in ledger.values()} == {"WH", "WH2"}
    assert all(m.occurred_at.tzinfo and m.source_updated_at.tzinfo for m in ledger.values())


def test_incremental_pull_then_cancellation(
    tryton_source: TrytonSource, tryton_proteus: Any
) -> None:
    ledger: Ledger = {}
    cursor = apply(ledger, tryton_source, None, 4)

    # several moves done in one transaction share one write_date
    receipt = scenario.purchase_received(
        tryton_proteus, "WH", {"SKU-001": 7, "SKU-002": 3, "SKU-003": 4}
    )
    scenario.sale_shipped(tryton_proteus, "WH2", {"SKU-001": 6})
    scenario.transfer(tryton_proteus, "WH2", "WH", {"SKU-001": 2})

    seen: list[Movement] = []
    previous = back(cursor)
    for page in tryton_source.pull("moves", previous, 1):  # page size 1 splits equal stamps
        assert page.cursor is not None and page.cursor > previous
        previous = page.cursor
        seen.extend(page.movements)
        for m in page.movements:
            ledger[m.key] = m
    assert previous > cursor
    cursor = previous
    receipt_keys = {m.key for m in seen if m.key.startswith(f"tryton:stock.shipment.in:{receipt}:")}
    assert len(receipt_keys) == 3
    stamps = [m.source_updated_at for m in seen if m.key in receipt_keys]
    assert len(set(stamps)) == 1, "one transaction, one write_date"
    assert fold(ledger.values()) == on_hand(tryton_source)
    assert ("SKU-003", "WH") in on_hand(tryton_source)

    moves = scenario.cancel_shipment_in(tryton_proteus, receipt)
    assert moves
    cursor = apply(ledger, tryton_source, back(cursor), 2)
    cancelled = [ledger[k] for k in receipt_keys]
    assert [m.active for m in cancelled] == [False, False, False]
    assert fold(ledger.values()) == on_hand(tryton_source)
    assert ("SKU-003", "WH") not in on_hand(tryton_source)

    # nothing new: a re-poll from the last cursor returns nothing
    assert [m for p in tryton_source.pull("moves", cursor, 5) for m in p.movements] == []


def test_check_and_window(tryton_source: TrytonSource) -> None:
    assert "2 warehouse(s)" in tryton_source.check()
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert list(tryton_source.keys_in_window("moves", future)) == []
    with pytest.raises(PermanentError, match="unknown tryton stream"):
        list(tryton_source.pull("nope", None, 5))


def test_wrong_password_is_permanent(tryton_server: tryton.TrytonServer) -> None:
    settings = TrytonSettings(**tryton_server.settings(password="not-the-password"))
    source = build(settings, ConnectorContext(sleep=lambda _s: None))
    with pytest.raises(PermanentError, match="rejected"):
        source.check()
    source.close()


def test_stopped_server_is_transient(tryton_server: tryton.TrytonServer) -> None:
    url = f"http://127.0.0.1:{tryton._free_port()}"
    settings = TrytonSettings(**tryton_server.settings(url=url))
    sleeps: list[float] = []
    source = build(settings, ConnectorContext(sleep=sleeps.append))
    with pytest.raises(TransientError):
        list(source.pull("moves", None, 3))
    assert len(sleeps) == settings.max_attempts - 1
    source.close()


def _fault(base_url: str, **mock: Any) -> AbstractContextManager[Any]:
    @contextlib.contextmanager
    def inject() -> Iterator[None]:
        with respx.mock(base_url=base_url, assert_all_called=False) as router:
            router.route().mock(**mock)
            yield

    return inject()


class TestTrytonSourceContract(ErpSourceContract):
    @pytest.fixture
    def contract_source(self, tryton_source: TrytonSource) -> TrytonSource:
        return tryton_source

    @pytest.fixture
    def contract_page_size(self) -> int:
        return 3

    @pytest.fixture
    def contract_remove_line(self) -> Callable[[], str]:
        pytest.skip(
            "Tryton moves are one-line documents for the ledger: each stock.move is read"
            " by its own write_date and no page names a complete document; a done move"
            " cannot be deleted, only cancelled, which the pull reads as a withdrawn move"
        )

    @pytest.fixture
    def contract_reserve(
        self, tryton_source: TrytonSource, tryton_proteus: Any
    ) -> Callable[[Decimal], tuple[StockKey, Callable[[], None]]]:
        """A sale of a scenario product with stock, its shipment assigned; cancelling
        the shipment releases it."""

        def reserve(qty: Decimal) -> tuple[StockKey, Callable[[], None]]:
            key = next(
                r.stock_key
                for r in tryton_source.on_hand()
                if r.sku in scenario.SKUS and r.qty >= qty
            )
            lines = {key.sku: int(qty)}
            shipment = scenario.sale_assigned(tryton_proteus, key.warehouse, lines)

            def release() -> None:
                scenario.shipment_out(tryton_proteus, shipment, "cancel", state="cancelled")

            return key, release

        return reserve

    @pytest.fixture
    def contract_faults(self, tryton_server: tryton.TrytonServer) -> list[FaultCase]:
        url = tryton_server.url
        return [
            ("HTTP 503", lambda: _fault(url, return_value=httpx.Response(503)), TransientError),
            (
                "connection refused",
                lambda: _fault(url, side_effect=httpx.ConnectError("refused")),
                TransientError,
            ),
            (
                "session rejected",
                lambda: _fault(url, return_value=httpx.Response(401)),
                PermanentError,
            ),
            ("not exposed", lambda: _fault(url, return_value=httpx.Response(403)), PermanentError),
        ]

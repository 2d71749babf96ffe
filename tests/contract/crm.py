"""Contract for CrmSink implementations, and for the batch sinks among them.

Fixtures a subclass provides:
- ``contract_sink``: a CrmSink over an empty stock object with known products/warehouses.
- ``mapped_keys``: at least two StockKeys the CRM can resolve.
- ``unmapped_key``: a StockKey whose SKU the CRM does not know.
- ``add_duplicate`` (optional): makes one more record of a key as a person would, and
  returns its id; by default ``create_level``, which a sink that upserts by external id
  cannot use for it (it writes the key's one record).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sync.errors import RecordGoneError, UnmappedError
from sync.model import LevelValue, Movement, MovementKind, StockKey
from sync.ports import BatchLevelSink, BatchMovementSink, CrmSink

AddDuplicate = Callable[[StockKey, LevelValue], str]


def _movement(key: str, sku: str, warehouse: str, qty: str) -> Movement:
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    return Movement(
        key=key,
        kind=MovementKind.RECEIPT,
        sku=sku,
        warehouse=warehouse,
        qty=Decimal(qty),
        occurred_at=at,
        source_updated_at=at,
        doc_no="DOC-1",
    )


class CrmSinkContract:
    @pytest.fixture
    def add_duplicate(self, contract_sink: CrmSink) -> AddDuplicate:
        return contract_sink.create_level

    def test_is_a_crm_sink(self, contract_sink: CrmSink) -> None:
        assert isinstance(contract_sink, CrmSink)

    def test_create_then_find_then_update(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        key = mapped_keys[0]
        assert contract_sink.find_level(key) is None
        crm_id = contract_sink.create_level(key, LevelValue(Decimal("10"), Decimal("10")))
        assert crm_id
        assert contract_sink.find_level(key) == crm_id
        value = LevelValue(Decimal("12.5"), Decimal("11"))
        contract_sink.update_level(crm_id, key, value)
        levels = {lvl.stock_key: lvl for lvl in contract_sink.read_levels()}
        assert levels[key].qty == contract_sink.shown_level(value).real
        assert levels[key].crm_id == crm_id

    def test_a_level_reads_back_as_shown(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        """``shown_level`` is what the CRM holds once written (its field precision)."""
        key = mapped_keys[0]
        value = LevelValue(Decimal("139.625"), Decimal("100.375"))
        shown = contract_sink.shown_level(value)
        assert contract_sink.shown_level(shown) == shown  # rounding twice changes nothing
        contract_sink.create_level(key, value)
        (level,) = [lvl for lvl in contract_sink.read_levels() if lvl.stock_key == key]
        assert (level.qty, level.available) == (shown.real, shown.available)

    def test_read_levels_lists_every_record_once(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        ids = {
            key: contract_sink.create_level(key, LevelValue(Decimal(i), Decimal(i)))
            for i, key in enumerate(mapped_keys, start=1)
        }
        levels = list(contract_sink.read_levels())
        assert sorted(lvl.stock_key for lvl in levels) == sorted(ids)
        for lvl in levels:
            assert lvl.crm_id == ids[lvl.stock_key]
            assert isinstance(lvl.qty, Decimal)

    def test_read_levels_exposes_duplicates_and_invalidate_retires_one(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey], add_duplicate: AddDuplicate
    ) -> None:
        """Two records for one key (architecture §6.3): both are read, oldest first; the
        older is what find_level binds; invalidating it leaves the other."""
        key = mapped_keys[0]
        older = contract_sink.create_level(key, LevelValue(Decimal(7), Decimal(7)))
        newer = add_duplicate(key, LevelValue(Decimal(3), Decimal(3)))
        read = [(lvl.crm_id, lvl.qty) for lvl in contract_sink.read_levels()]
        assert read == [(older, Decimal(7)), (newer, Decimal(3))]
        assert contract_sink.find_level(key) == older
        contract_sink.invalidate_level(older, key)
        contract_sink.invalidate_level(older, key)  # idempotent
        assert [lvl.crm_id for lvl in contract_sink.read_levels()] == [newer]
        assert contract_sink.find_level(key) == newer

    def test_an_update_of_a_retired_record_says_it_is_gone(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        """A record deleted or invalidated in the CRM behind stocksync's back: updating it
        by id raises RecordGoneError (the pusher then binds or creates anew) and
        brings nothing back to life."""
        key = mapped_keys[0]
        crm_id = contract_sink.create_level(key, LevelValue(Decimal(5), Decimal(5)))
        contract_sink.invalidate_level(crm_id, key)
        with pytest.raises(RecordGoneError):
            contract_sink.update_level(crm_id, key, LevelValue(Decimal(6), Decimal(6)))
        assert list(contract_sink.read_levels()) == []
        assert contract_sink.find_level(key) is None

    def test_unmapped_sku_is_reported_not_created(
        self, contract_sink: CrmSink, unmapped_key: StockKey
    ) -> None:
        with pytest.raises(UnmappedError) as info:
            contract_sink.create_level(unmapped_key, LevelValue(Decimal(1), Decimal(1)))
        assert info.value.what in {"sku", "warehouse"}
        assert all(lvl.stock_key != unmapped_key for lvl in contract_sink.read_levels())

    def test_movement_mirror_round_trip(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        key = mapped_keys[0]
        movement = _movement("test:DOC:1:1", key.sku, key.warehouse, "3")
        assert contract_sink.find_movement(movement.key) is None
        crm_id = contract_sink.create_movement(movement)
        assert contract_sink.find_movement(movement.key) == crm_id
        contract_sink.update_movement(crm_id, _movement(movement.key, key.sku, key.warehouse, "4"))
        assert contract_sink.find_movement(movement.key) == crm_id


class BatchSinkContract:
    """For a sink that also upserts in batches (``BatchLevelSink``, ``BatchMovementSink``):
    the same call twice writes the same records, each item gets its own outcome."""

    def test_is_a_batch_sink(self, contract_sink: CrmSink) -> None:
        assert isinstance(contract_sink, BatchLevelSink)
        assert isinstance(contract_sink, BatchMovementSink)
        assert contract_sink.batch_size >= 1

    def test_an_upsert_sent_twice_writes_the_same_records(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        assert isinstance(contract_sink, BatchLevelSink)
        items = [(k, LevelValue(Decimal(i), Decimal(i))) for i, k in enumerate(mapped_keys, 1)]
        first = contract_sink.upsert_levels(items)
        assert [o.created for o in first] == [True] * len(items)
        again = [(k, LevelValue(v.real + 1, v.available)) for k, v in items]
        second = contract_sink.upsert_levels(again)
        assert [o.crm_id for o in second] == [o.crm_id for o in first]
        assert [o.created for o in second] == [False] * len(items)
        levels = {lvl.stock_key: lvl for lvl in contract_sink.read_levels()}
        assert len(levels) == len(items) == len(list(contract_sink.read_levels()))
        for key, value in again:
            assert levels[key].qty == contract_sink.shown_level(value).real

    def test_an_unknown_product_fails_its_item_alone(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey], unmapped_key: StockKey
    ) -> None:
        assert isinstance(contract_sink, BatchLevelSink)
        one = LevelValue(Decimal(1), Decimal(1))
        outcomes = contract_sink.upsert_levels(
            [(mapped_keys[0], one), (unmapped_key, one), (mapped_keys[1], one)]
        )
        assert outcomes[0].crm_id and outcomes[2].crm_id
        assert isinstance(outcomes[1].error, UnmappedError) and outcomes[1].crm_id is None
        assert outcomes[1].error.what in {"sku", "warehouse"}
        assert {lvl.stock_key for lvl in contract_sink.read_levels()} == set(mapped_keys)

    def test_movements_upserted_twice_stay_one_record_each(
        self, contract_sink: CrmSink, mapped_keys: list[StockKey]
    ) -> None:
        assert isinstance(contract_sink, BatchMovementSink)
        key = mapped_keys[0]
        moves = [_movement(f"test:DOC:{n}:1", key.sku, key.warehouse, str(n)) for n in (1, 2)]
        first = contract_sink.upsert_movements(moves)
        second = contract_sink.upsert_movements(moves)
        assert [o.crm_id for o in first] == [o.crm_id for o in second]
        assert [o.created for o in second] == [False, False]
        assert contract_sink.find_movement(moves[1].key) == first[1].crm_id

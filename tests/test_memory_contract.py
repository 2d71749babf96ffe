"""The in-memory CRM passes the shared CrmSink contract (it stands in for real sinks)."""

from __future__ import annotations

import pytest

from connectors.memory.sink import MemoryBatchCrm, MemoryCrm
from sync.model import LevelValue, StockKey
from tests.contract.crm import AddDuplicate, BatchSinkContract, CrmSinkContract


class TestMemoryCrmContract(CrmSinkContract):
    @pytest.fixture
    def contract_sink(self) -> MemoryCrm:
        return MemoryCrm(skus={"A", "B"}, warehouses={"W1", "W2"})

    @pytest.fixture
    def mapped_keys(self) -> list[StockKey]:
        return [StockKey("A", "W1"), StockKey("B", "W2")]

    @pytest.fixture
    def unmapped_key(self) -> StockKey:
        return StockKey("NO-SUCH-SKU", "W1")


class TestMemoryBatchCrmContract(CrmSinkContract, BatchSinkContract):
    @pytest.fixture
    def contract_sink(self) -> MemoryBatchCrm:
        return MemoryBatchCrm(skus={"A", "B"}, warehouses={"W1", "W2"})

    @pytest.fixture
    def add_duplicate(self, contract_sink: MemoryBatchCrm) -> AddDuplicate:
        def add(key: StockKey, value: LevelValue) -> str:
            return contract_sink.add_record(key, value.real)

        return add

    @pytest.fixture
    def mapped_keys(self) -> list[StockKey]:
        return [StockKey("A", "W1"), StockKey("B", "W2")]

    @pytest.fixture
    def unmapped_key(self) -> StockKey:
        return StockKey("NO-SUCH-SKU", "W1")

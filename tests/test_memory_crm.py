"""The in-memory CRM passes the CrmSink contract, holding values exactly or at a precision."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.memory.sink import MemoryCrm
from sync.model import LevelValue, StockKey
from tests.contract.crm import CrmSinkContract


class TestExactMemoryCrm(CrmSinkContract):
    @pytest.fixture
    def contract_sink(self) -> MemoryCrm:
        return MemoryCrm(skus={"A", "B"})

    @pytest.fixture
    def mapped_keys(self) -> list[StockKey]:
        return [StockKey("A", "W1"), StockKey("B", "W2")]

    @pytest.fixture
    def unmapped_key(self) -> StockKey:
        return StockKey("NO-SUCH-SKU", "W1")


class TestMemoryCrmWithNoDecimals(TestExactMemoryCrm):
    @pytest.fixture
    def contract_sink(self) -> MemoryCrm:
        return MemoryCrm(skus={"A", "B"}, precision=0)


@pytest.mark.parametrize(
    ("precision", "level", "shown"),
    [(None, "139.625", "139.625"), (2, "139.625", "139.62"), (0, "7.5", "8"), (0, "8.5", "8")],
)
def test_shown_level_rounds_half_even(precision: int | None, level: str, shown: str) -> None:
    value = LevelValue(Decimal(level), Decimal(level))
    assert MemoryCrm(precision=precision).shown_level(value).real == Decimal(shown)

"""The Fxiaoke sink passes the shared CrmSink contract against the emulator over HTTP."""

from __future__ import annotations

import pytest

from connectors.fxiaoke.sink import FxiaokeSink
from sync.model import StockKey
from tests.contract.crm import CrmSinkContract


class TestFxiaokeSinkContract(CrmSinkContract):
    @pytest.fixture
    def contract_sink(self, sink: FxiaokeSink) -> FxiaokeSink:
        return sink

    @pytest.fixture
    def mapped_keys(self) -> list[StockKey]:
        return [StockKey("SKU-0001", "WH-MAIN"), StockKey("SKU-0002", "WH-EAST")]

    @pytest.fixture
    def unmapped_key(self) -> StockKey:
        return StockKey("NO-SUCH-SKU", "WH-MAIN")

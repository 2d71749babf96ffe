"""The K/3 Cloud source passes the shared ErpSource contract against the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal

import pytest

from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.scenarios import seed_demo
from connectors.k3cloud.source import K3CloudSource
from sync.errors import ConfigError, PermanentError, TransientError
from sync.model import StockKey
from tests.contract.erp import ErpSourceContract, FaultCase

RemoveLine = Callable[[], str]


@pytest.fixture
def contract_source(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> K3CloudSource:
    seed_demo(emulator)
    for i in range(7):
        fid = emulator.create_document(
            "STK_InStock",
            [{"material": f"M{i}{j}", "qty": f"{j}.5", "stock": "CK001"} for j in range(3)],
        )
        if i % 2 == 0:
            emulator.audit("STK_InStock", fid)
    return make_source(streams=["purchase_receipt", "sales_outbound", "transfer", "count_loss"])


@pytest.fixture
def contract_remove_line(contract_source: K3CloudSource, emulator: K3CloudEmulator) -> RemoveLine:
    """A user deletes the middle line of an approved three-line receipt (an edit)."""

    def remove() -> str:
        approved = [doc for doc in emulator.store.docs["STK_InStock"].values() if doc.status == "C"]
        doc = next(d for d in approved if len(d.lines) == 3)
        entry = doc.lines[1].entry_id
        emulator.remove_line("STK_InStock", doc.fid, entry)
        return f"k3cloud:STK_InStock:{doc.fid}:{entry}"

    return remove


@pytest.fixture
def contract_reserve(
    contract_source: K3CloudSource, emulator: K3CloudEmulator
) -> Callable[[Decimal], tuple[StockKey, Callable[[], None]]]:
    """A lock (锁库) on the first key with stock on hand; unlocking releases it."""

    def reserve(qty: Decimal) -> tuple[StockKey, Callable[[], None]]:
        key = next(r.stock_key for r in contract_source.on_hand() if r.qty >= qty)
        lock_id = emulator.lock(key.sku, key.warehouse, qty)
        return key, lambda: emulator.unlock(lock_id)

    return reserve


@pytest.fixture
def contract_page_size() -> int:
    return 4


@contextmanager
def _rotated_secret(emulator: K3CloudEmulator) -> Iterator[None]:
    old = emulator.credentials["app_secret"]
    emulator.rotate_secret("f" * 32)
    try:
        yield
    finally:
        emulator.rotate_secret(old)


@pytest.fixture
def contract_faults(emulator: K3CloudEmulator) -> list[FaultCase]:
    def fault(kind: str) -> Callable[[], AbstractContextManager[None]]:
        return lambda: emulator.faults(kind)

    cases: list[FaultCase] = [
        ("persistent HTTP 500", fault("http500"), TransientError),
        ("persistent response_error", fault("response_error"), TransientError),
        ("persistent truncated JSON", fault("truncated"), TransientError),
        ("persistent throttling", fault("throttle"), TransientError),
        ("app secret rotated", lambda: _rotated_secret(emulator), PermanentError),
    ]
    return cases


class TestK3CloudContract(ErpSourceContract):
    pass


def test_unknown_stream_is_a_config_error(contract_source: K3CloudSource) -> None:
    with pytest.raises(ConfigError):
        list(contract_source.pull("misc_in", None, 10))

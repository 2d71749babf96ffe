"""An in-memory CRM with the same single-record operations as a real one.

It knows a set of SKUs and warehouses (others raise UnmappedError), counts
calls, and can fail on demand — including "applied, but the answer was lost" —
so the push engine's idempotency can be tested without HTTP. ``MemoryBatchCrm``
adds the batch upserts by external id (``BatchLevelSink``), with per-item failures
and a call budget, as Salesforce has them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from pydantic import Field

from sync.errors import (
    BudgetExhaustedError,
    OutcomeUnknownError,
    PermanentError,
    RecordGoneError,
    TransientError,
    UnmappedError,
)
from sync.model import CrmLevel, LevelValue, Movement, StockKey
from sync.ports import ApiUsage, BatchOutcome, ConnectorContext
from sync.settings import StrictModel


class MemoryCrmSettings(StrictModel):
    """Settings of the in-memory CRM (tests and experiments only)."""

    type: Literal["memory-crm"] = "memory-crm"
    skus: list[str] | None = None
    warehouses: list[str] | None = None
    #: decimal places the CRM holds (None: any value exactly)
    precision: int | None = Field(None, ge=0, le=30, description="0 to 30 places")
    #: records per batch upsert (None: single-record operations only)
    batch_size: int | None = Field(None, ge=1, le=10_000, description="1 to 10,000 records")


@dataclass
class _Record:
    key: StockKey
    #: real and available stock as stored
    value: LevelValue
    #: the blocked figure as stored (None: real − available, as a record made by hand)
    reserved: Decimal | None = None

    @property
    def blocked(self) -> Decimal:
        return self.value.reserved if self.reserved is None else self.reserved


class MemoryCrm:
    name = "memory-crm"

    def __init__(
        self,
        skus: set[str] | None = None,
        warehouses: set[str] | None = None,
        precision: int | None = None,
    ) -> None:
        #: None means "knows every code"
        self.skus = skus
        self.warehouses = warehouses
        #: decimal places of the stock numbers; values are stored rounded half-even
        self.precision = precision
        self.levels: dict[str, _Record] = {}
        self.movements: dict[str, tuple[str, Movement]] = {}
        self.calls: Counter[str] = Counter()
        self._ids = itertools.count(1)
        #: queue of faults: ("create_level", "lost") applies then raises OutcomeUnknownError,
        #: ("update_level", "fail") raises TransientError without applying, ("…", "reject")
        #: raises PermanentError without applying
        self.faults: list[tuple[str, str]] = []

    def _fault(self, op: str) -> str | None:
        for i, (target, mode) in enumerate(self.faults):
            if target in (op, "*"):
                del self.faults[i]
                if mode == "fail":
                    raise TransientError(f"memory CRM: injected failure on {op}")
                if mode == "reject":
                    raise PermanentError(f"memory CRM: {op} rejected (injected)")
                return mode
        return None

    def _check(self, key: StockKey) -> None:
        if self.skus is not None and key.sku not in self.skus:
            raise UnmappedError(f"CRM has no product {key.sku!r}", what="sku", code=key.sku)
        if self.warehouses is not None and key.warehouse not in self.warehouses:
            raise UnmappedError(
                f"CRM has no warehouse {key.warehouse!r}", what="warehouse", code=key.warehouse
            )

    def find_level(self, key: StockKey) -> str | None:
        self.calls["find_level"] += 1
        self._fault("find_level")
        self._check(key)
        return next((i for i, r in self.levels.items() if r.key == key), None)

    def shown_level(self, value: LevelValue) -> LevelValue:
        if self.precision is None:
            return value
        unit = Decimal(1).scaleb(-self.precision)
        return LevelValue(
            value.real.quantize(unit, rounding=ROUND_HALF_EVEN),
            value.available.quantize(unit, rounding=ROUND_HALF_EVEN),
        )

    def shown_reserved(self, value: LevelValue) -> Decimal:
        """Blocked = real − available as shown (each at ``precision``, so it is too)."""
        return self.shown_level(value).reserved

    def _stored(self, key: StockKey, value: LevelValue) -> _Record:
        return _Record(key, self.shown_level(value), self.shown_reserved(value))

    def create_level(self, key: StockKey, value: LevelValue) -> str:
        self.calls["create_level"] += 1
        mode = self._fault("create_level")
        self._check(key)
        crm_id = f"L{next(self._ids)}"
        self.levels[crm_id] = self._stored(key, value)
        if mode == "lost":
            raise OutcomeUnknownError("memory CRM: answer lost after create")
        return crm_id

    def update_level(self, crm_id: str, key: StockKey, value: LevelValue) -> None:
        self.calls["update_level"] += 1
        mode = self._fault("update_level")
        if crm_id not in self.levels:  # as a real CRM: an update never creates
            raise RecordGoneError(f"memory CRM: stock record {crm_id} does not exist")
        self.levels[crm_id] = self._stored(key, value)
        if mode == "lost":
            raise OutcomeUnknownError("memory CRM: answer lost after update")

    def invalidate_level(self, crm_id: str, key: StockKey) -> None:
        """Remove a (duplicate) record; removing one already gone is a no-op."""
        self.calls["invalidate_level"] += 1
        self._fault("invalidate_level")
        self.levels.pop(crm_id, None)

    def prepare_levels(self, keys: Sequence[StockKey]) -> None:
        """Nothing to resolve in memory."""

    def read_levels(self) -> Iterator[CrmLevel]:
        """Every record, duplicates included, oldest first (creation order), with its
        real, available and blocked figures."""
        self.calls["read_levels"] += 1
        for crm_id, r in list(self.levels.items()):
            yield CrmLevel(
                r.key.sku, r.key.warehouse, r.value.real, crm_id, r.value.available, r.blocked
            )

    def find_movement(self, movement_key: str) -> str | None:
        self.calls["find_movement"] += 1
        self._fault("find_movement")
        return next((i for i, (k, _) in self.movements.items() if k == movement_key), None)

    def create_movement(self, movement: Movement) -> str:
        self.calls["create_movement"] += 1
        mode = self._fault("create_movement")
        self._check(movement.stock_key)
        crm_id = f"M{next(self._ids)}"
        self.movements[crm_id] = (movement.key, movement)
        if mode == "lost":
            raise OutcomeUnknownError("memory CRM: answer lost after create")
        return crm_id

    def update_movement(self, crm_id: str, movement: Movement) -> None:
        self.calls["update_movement"] += 1
        self._fault("update_movement")
        if crm_id not in self.movements:
            raise RecordGoneError(f"memory CRM: movement record {crm_id} does not exist")
        self.movements[crm_id] = (movement.key, movement)

    def check(self) -> str:
        return f"memory CRM with {len(self.levels)} stock records"

    def close(self) -> None:
        return None

    # -- test helpers ---------------------------------------------------------------
    def values(self) -> dict[StockKey, Decimal]:
        return {r.key: r.value.real for r in self.levels.values()}

    def add_record(self, key: StockKey, qty: Decimal, *, oldest: bool = False) -> str:
        """Someone (a person, an import, another tool) creates a record, maybe a duplicate;
        ``oldest``: one that predates every other record (read first, found first)."""
        crm_id = f"L{next(self._ids)}"
        record = _Record(key, LevelValue(qty, qty))
        self.levels = {crm_id: record, **self.levels} if oldest else {**self.levels, crm_id: record}
        return crm_id

    def delete(self, crm_id: str) -> None:
        """Someone deletes a stock or movement record in the CRM (or resets the tenant)."""
        self.levels.pop(crm_id, None)
        self.movements.pop(crm_id, None)

    def records(self, key: StockKey) -> dict[str, Decimal]:
        """crm id → real stock of every record of ``key``, oldest first."""
        return {i: r.value.real for i, r in self.levels.items() if r.key == key}

    def _records_of(self, key: StockKey) -> list[_Record]:
        return [r for r in self.levels.values() if r.key == key]

    def set_value(self, key: StockKey, qty: Decimal) -> None:
        """Someone edits the real stock of ``key``'s records by hand (the other figures stay)."""
        for r in self._records_of(key):
            r.reserved = r.blocked
            r.value = LevelValue(qty, r.value.available)

    def set_available(self, key: StockKey, qty: Decimal) -> None:
        """Someone edits the available stock of ``key``'s records by hand."""
        for r in self._records_of(key):
            r.reserved = r.blocked
            r.value = LevelValue(r.value.real, qty)

    def set_reserved(self, key: StockKey, qty: Decimal) -> None:
        """Someone edits the blocked (reserved) stock of ``key``'s records by hand."""
        for r in self._records_of(key):
            r.reserved = qty

    def figures(self, key: StockKey) -> tuple[Decimal, Decimal, Decimal]:
        """(real, available, blocked) of ``key``'s first record; KeyError when it has none."""
        for r in self._records_of(key):
            return r.value.real, r.value.available, r.blocked
        raise KeyError(key)


class MemoryBatchCrm(MemoryCrm):
    """The memory CRM with batch upserts by external id (the stock key, the movement key).

    Faults, besides ``MemoryCrm``'s: per call (target ``upsert_levels`` /
    ``upsert_movements``) "lost" applies the batch then raises OutcomeUnknownError, "fail"
    raises TransientError, "quota" raises BudgetExhaustedError, each without a result;
    per item (target ``upsert_item``, consumed item by item in order) "reject" fails that
    item alone with a PermanentError, "lock" with a TransientError (a record lock).
    ``budget``: calls allowed before every call raises BudgetExhaustedError.
    """

    def __init__(self, *args: Any, batch_size: int = 200, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        #: upsert calls still allowed (None: no limit)
        self.budget: int | None = None
        #: the call budget this CRM reports (``api_usage``), set by a test
        self.usage: ApiUsage | None = None

    def api_usage(self) -> ApiUsage | None:
        return self.usage

    def _call(self, op: str, size: int) -> str | None:
        self.calls[op] += 1
        if size > self.batch_size:
            raise PermanentError(f"memory CRM: {size} records a call, at most {self.batch_size}")
        if self.budget is not None:
            if self.budget <= 0:
                raise BudgetExhaustedError("memory CRM: call budget spent")
            self.budget -= 1
        mode = self._fault(op)
        if mode == "quota":
            raise BudgetExhaustedError("memory CRM: call budget spent (injected)")
        return mode

    def _item_fault(self) -> PermanentError | TransientError | None:
        for i, (target, mode) in enumerate(self.faults):
            if target == "upsert_item":
                del self.faults[i]
                if mode == "reject":
                    return PermanentError("memory CRM: record rejected (injected)")
                return TransientError("memory CRM: record locked (injected)")
        return None

    def _upsert_level(self, key: StockKey, value: LevelValue) -> BatchOutcome:
        fault = self._item_fault()
        if fault is not None:
            return BatchOutcome(error=fault)
        try:
            self._check(key)
        except UnmappedError as exc:
            return BatchOutcome(error=exc)
        crm_id = next((i for i, r in self.levels.items() if r.key == key), None)
        created = crm_id is None
        crm_id = crm_id or f"L{next(self._ids)}"
        self.levels[crm_id] = self._stored(key, value)
        return BatchOutcome(crm_id, created)

    def upsert_levels(self, items: Sequence[tuple[StockKey, LevelValue]]) -> list[BatchOutcome]:
        """Write each key's record (the oldest, if a person made duplicates), else create it."""
        mode = self._call("upsert_levels", len(items))
        outcomes = [self._upsert_level(key, value) for key, value in items]
        if mode == "lost":
            raise OutcomeUnknownError("memory CRM: answer lost after a batch upsert")
        return outcomes

    def _upsert_movement(self, movement: Movement) -> BatchOutcome:
        fault = self._item_fault()
        if fault is not None:
            return BatchOutcome(error=fault)
        try:
            self._check(movement.stock_key)
        except UnmappedError as exc:
            return BatchOutcome(error=exc)
        crm_id = next((i for i, (k, _) in self.movements.items() if k == movement.key), None)
        created = crm_id is None
        crm_id = crm_id or f"M{next(self._ids)}"
        self.movements[crm_id] = (movement.key, movement)
        return BatchOutcome(crm_id, created)

    def upsert_movements(self, movements: Sequence[Movement]) -> list[BatchOutcome]:
        mode = self._call("upsert_movements", len(movements))
        outcomes = [self._upsert_movement(m) for m in movements]
        if mode == "lost":
            raise OutcomeUnknownError("memory CRM: answer lost after a batch upsert")
        return outcomes


REGISTRY: dict[str, MemoryCrm] = {}


def build(settings: MemoryCrmSettings, context: ConnectorContext) -> MemoryCrm:
    crm = REGISTRY.get(context.pipeline)
    if crm is None:
        skus = set(settings.skus) if settings.skus is not None else None
        warehouses = set(settings.warehouses) if settings.warehouses is not None else None
        if settings.batch_size is None:
            crm = MemoryCrm(skus, warehouses, settings.precision)
        else:
            crm = MemoryBatchCrm(
                skus, warehouses, settings.precision, batch_size=settings.batch_size
            )
        REGISTRY[context.pipeline] = crm
    return crm

"""A whole pipeline against the Fxiaoke emulator: MemoryErp → ledger → Pusher → sink over HTTP.

One fake clock drives the ERP stamps, the ledger, the pusher, the connector's
token and rate-limit bookkeeping and the emulator, and the connector's sleeps
move it instead of waiting.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connectors.fxiaoke.emulator import FxiaokeEmulator, build_emulator
from connectors.fxiaoke.sink import FxiaokeSink, build
from connectors.memory.source import MemoryErp
from sync.ledger import LedgerOptions
from sync.model import Movement, MovementKind, StockKey
from sync.ports import ConnectorContext, MemoryTokenCache, TokenCache
from sync.pull import PullOptions, pull_all
from sync.push import Pusher, PushOptions, PushReport
from sync.state import StateStore
from tests.fxiaoke.conftest import FakeClock, RecordingTransport, settings_for

CREATE = "/cgi/crm/v2/data/create"
UPDATE = "/cgi/crm/v2/data/update"
QUERY = "/cgi/crm/v2/data/query"
M_CREATE = "/cgi/crm/custom/v2/data/create"
M_UPDATE = "/cgi/crm/custom/v2/data/update"
M_QUERY = "/cgi/crm/custom/v2/data/query"
TOKEN = "/cgi/corpAccessToken/get/V2"

PULL = PullOptions(page_size=50, overlap_s=0)


@dataclass
class Rig:
    """One pipeline (fresh name, fresh emulator) over a state store shared by a test."""

    store: StateStore
    mirror: bool = True
    push_options: PushOptions = field(default_factory=PushOptions)
    clock: FakeClock = field(default_factory=FakeClock)
    pipeline: str = field(default_factory=lambda: f"p{uuid.uuid4().hex[:10]}")
    #: where tokens outlive a ``restart()`` (the state DB in production); None: in memory
    token_cache: TokenCache | None = None

    def __post_init__(self) -> None:
        self.emulator: FxiaokeEmulator = build_emulator("demo", clock=self.clock.time)
        self.erp = MemoryErp(now=self.clock.now)
        self.transport: RecordingTransport = RecordingTransport(self.emulator)
        self.tokens = self.token_cache or MemoryTokenCache()
        self._start()
        self._lines = 0

    def _start(self) -> None:
        context = ConnectorContext(
            pipeline=self.pipeline,
            now=self.clock.now,
            sleep=self.clock.sleep,
            token_cache=self.tokens,
            http_transport=self.transport,
        )
        self.sink: FxiaokeSink = build(
            settings_for(self.emulator, verify_movement_object=self.mirror), context
        )
        self.pusher = Pusher(
            self.store, self.sink, self.pipeline, now=self.clock.now, options=self.push_options
        )

    def restart(self) -> None:
        """A new process on the same state DB and CRM: fresh sink, client and pusher, so
        every cache (describes, codes, the token in memory) is gone but ``token_cache``."""
        self.sink.close()
        self._start()

    def close(self) -> None:
        self.sink.close()

    # -- the ERP side -----------------------------------------------------------------
    def put(self, sku: str, warehouse: str, qty: Decimal | int | str) -> Movement:
        """A new document line: a receipt when ``qty`` > 0, else a shipment."""
        self._lines += 1
        amount = Decimal(qty)
        kind = MovementKind.RECEIPT if amount > 0 else MovementKind.SHIPMENT
        now = self.clock.now()
        m = Movement(
            f"memory:d:{self._lines}:1", kind, sku, warehouse, amount, now, now, f"D{self._lines}"
        )
        return self.erp.put(m)

    # -- the pipeline -----------------------------------------------------------------
    def pull(self) -> None:
        pull_all(
            self.store,
            self.erp,
            self.pipeline,
            now=self.clock.now,
            options=PULL,
            ledger=LedgerOptions(mirror_movements=self.mirror),
        )

    def push(self) -> PushReport:
        return self.pusher.run()

    def calls(self) -> Counter[str]:
        """Emulator calls since the last ``reset()``, zero counts left out."""
        return +self.emulator.calls

    def reset(self) -> None:
        self.emulator.reset_counters()
        self.transport.requests.clear()

    def queries(self) -> Counter[str]:
        """Query calls since the last ``reset()`` per object queried."""
        return Counter(
            str(body.get("data", {}).get("dataObjectApiName"))
            for path, _, body in self.transport.requests
            if path.endswith("/data/query")
        )

    # -- what the CRM holds -----------------------------------------------------------
    def stock_by_key(self) -> dict[StockKey, list[dict[str, Any]]]:
        """Live StockObj records grouped by the ERP codes of their product and warehouse."""
        skus = {r["_id"]: r["product_code"] for r in self.emulator.records("ProductObj")}
        whs = {r["_id"]: r["number"] for r in self.emulator.records("WarehouseObj")}
        grouped: dict[StockKey, list[dict[str, Any]]] = {}
        for rec in self.emulator.stock_records():
            key = StockKey(skus[rec["product_id"]], whs[rec["warehouse_id"]])
            grouped.setdefault(key, []).append(rec)
        return grouped

    def mirror_by_key(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for rec in self.emulator.movement_records():
            grouped.setdefault(str(rec["erp_key__c"]), []).append(rec)
        return grouped

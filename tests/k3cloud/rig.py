"""The real core over the emulator: cycles of ``pull_stream`` into an SQLite ledger.

The core's clock is the emulator's: the ERP stamps naive local times, the core
reads the same instant as an aware datetime, so the cursor cap (run start −
overlap) and the ERP's stamps agree as on a server whose clock is right.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import K3CloudSource
from sync.pull import PullOptions, PullReport, pull_stream
from sync.state import StateStore


class SetClock:
    """ERP local time (naive) that tests set by hand; each reading is the same instant."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current


class Ledger:
    """One pipeline's ledger, pulled cycle by cycle from one source."""

    def __init__(
        self,
        source: K3CloudSource,
        erp_now: Callable[[], datetime],
        *,
        page_size: int = 2,
        overlap_s: float = 120.0,
        history_since: date | None = None,
    ) -> None:
        self.source = source
        self.zone = ZoneInfo(source.settings.timezone)
        self.erp_now = erp_now
        self.store = StateStore("sqlite://")
        self.store.upgrade()
        self.options = PullOptions(
            page_size=page_size, overlap_s=overlap_s, history_since=history_since
        )

    def now(self) -> datetime:
        return self.erp_now().replace(tzinfo=self.zone).astimezone(UTC)

    def cycle(self, stream: str = "purchase_receipt") -> PullReport:
        return pull_stream(self.store, self.source, "p", stream, now=self.now, options=self.options)

    def levels(self) -> dict[tuple[str, str], Decimal]:
        return {(k.sku, k.warehouse): v for k, v in self.store.levels("p").items() if v != 0}

    def active_keys(self) -> set[str]:
        return {m.key for m in self.store.movements_in_window("p", "purchase_receipt", _EPOCH)}

    def close(self) -> None:
        self.store.close()


_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


def erp_levels(emulator: K3CloudEmulator) -> dict[tuple[str, str], Decimal]:
    return emulator.inventory()

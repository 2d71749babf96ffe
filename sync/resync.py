"""Push chosen keys again on demand (``stocksync resync``).

A key's value equal to the one last pushed is normally no write; a resync is for
when the CRM record was changed behind stocksync's back (or is suspected to
be), so the chosen keys are queued with their "last pushed" hash forgotten and
the next push writes each of them, looking the record up if it has no binding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sync.model import StockKey
from sync.state.store import StateStore, level_ref


@dataclass(frozen=True, slots=True)
class Selection:
    """What a resync names: products, warehouses and keys (every filter given must match)."""

    skus: tuple[str, ...] = ()
    warehouses: tuple[str, ...] = ()
    keys: tuple[StockKey, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.skus or self.warehouses or self.keys)


def select_keys(store: StateStore, pipeline: str, selection: Selection) -> list[StockKey]:
    """The pipeline's level keys the selection matches (every level when it is empty)."""
    return store.select_levels(
        pipeline, skus=selection.skus, warehouses=selection.warehouses, keys=selection.keys
    )


def queue_resync(store: StateStore, pipeline: str, keys: Sequence[StockKey], now: datetime) -> int:
    """Queue ``keys`` for a forced write (due now); return how many were queued.

    One transaction per 1000 keys, so a resync of every level never holds one huge
    transaction; the push that follows writes each key even when its value is unchanged.
    """
    refs = [level_ref(k) for k in keys]
    for start in range(0, len(refs), 1000):
        with store.transaction() as tx:
            tx.force_levels(pipeline, refs[start : start + 1000], now)
    return len(refs)

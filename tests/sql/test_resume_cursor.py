"""The core's resume hook (architecture §4.6): unchanged for sources without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.memory.source import MemoryErp
from sync.ledger import apply_page
from sync.model import Cursor, Page
from sync.ports import resume_cursor
from sync.pull import PullOptions, start_cursor
from sync.state import StateStore

AT = datetime(2026, 3, 1, 8, tzinfo=UTC)


class PositionSource(MemoryErp):
    """A source whose cursor is a position: it resumes from the stored cursor itself."""

    def resume_cursor(self, stream: str, stored: Cursor, overlap_s: float) -> Cursor:
        return stored


def test_without_the_hook_the_overlap_is_subtracted_and_the_tie_break_dropped() -> None:
    stored = Cursor(AT, "00000000000000000042")
    assert resume_cursor(MemoryErp(), "moves", stored, 120.0) == Cursor(
        AT - timedelta(seconds=120), ""
    )


def test_with_the_hook_the_source_decides(store: StateStore) -> None:
    stored = Cursor(datetime(1970, 1, 1, tzinfo=UTC), "00000000000000000042")
    apply_page(store, "p", Page("moves", [], stored), now=AT)
    options = PullOptions(overlap_s=120.0)
    assert start_cursor(store, "p", "moves", options, source=PositionSource()) == stored
    assert start_cursor(store, "p", "moves", options, source=MemoryErp()) == Cursor(
        stored.updated_at - timedelta(seconds=120), ""
    )
    assert start_cursor(store, "p", "moves", options) == Cursor(
        stored.updated_at - timedelta(seconds=120), ""
    )

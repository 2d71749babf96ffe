"""Naive ERP local times across daylight-saving changes (issue 13 item 7).

K/3 Cloud stamps naive local times. Where the clock goes back, a later change
can carry an earlier reading than one already pulled; where it jumps forward,
a reading can fall in the gap. Neither may lose or misplace a movement.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.localtime import earliest_local_reading
from connectors.k3cloud.source import K3CloudSource, build
from sync.model import Cursor
from sync.ports import ConnectorContext, source_zone
from sync.pull import PullOptions, day_start, start_cursor

from .conftest import settings_for
from .rig import Ledger, SetClock

FORM = "STK_InStock"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Rig:
    def __init__(self, zone: str, start: datetime, **ledger: object) -> None:
        self.clock = SetClock(start)
        self.emulator = K3CloudEmulator(now=self.clock, timezone=zone)
        context = ConnectorContext(http_transport=transport_for(self.emulator))
        settings = settings_for(self.emulator, streams=["purchase_receipt"], timezone=zone)
        self.source: K3CloudSource = build(settings, context)
        self.ledger = Ledger(self.source, self.clock, **ledger)  # type: ignore[arg-type]

    def bill(self, at: datetime, qty: str, date_: datetime | None = None) -> int:
        self.clock.current = at
        line = {"material": "P1", "qty": qty, "stock": "CK001"}
        return self.emulator.create_document(FORM, [line], status="C", date=date_)

    def cycle_at(self, at: datetime) -> None:
        self.clock.current = at
        self.ledger.cycle()

    def close(self) -> None:
        self.ledger.close()
        self.source.close()


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.close()


@pytest.mark.parametrize(
    ("zone", "day", "first", "pulled_at", "second", "next_cycle"),
    [
        # clocks go back 03:00 CEST → 02:00 CET: 02:20 CET comes after 02:50 CEST
        ("Europe/Berlin", "2024-10-27", "02:50", "02:55", "02:20", "02:30"),
        # New York: 02:00 EDT → 01:00 EST
        ("America/New_York", "2024-11-03", "01:50", "01:55", "01:10", "01:20"),
        # Lord Howe goes back half an hour: 02:00 +11 → 01:30 +10:30
        ("Australia/Lord_Howe", "2024-04-07", "01:50", "01:55", "01:40", "01:45"),
    ],
)
def test_change_in_the_repeated_hour_is_pulled(
    rigs: list[Rig], zone: str, day: str, first: str, pulled_at: str, second: str, next_cycle: str
) -> None:
    """The issue's case (Berlin) and two more zones: a bill stamped in the repeated hour
    after one stamped before the change, with a pull in between."""
    rig = Rig(zone, local(f"{day} {first}"))
    rigs.append(rig)
    rig.bill(local(f"{day} {first}"), "1")
    rig.cycle_at(local(f"{day} {pulled_at}"))  # first occurrence of the hour
    assert rig.ledger.levels() == {("P1", "CK001"): Decimal(1)}
    # the second occurrence of the hour: the emulator's clock reads these naive times again
    rig.bill(local(f"{day} {second}"), "10")
    rig.cycle_at(local(f"{day} {next_cycle}"))
    assert rig.ledger.levels() == rig.emulator.inventory() == {("P1", "CK001"): Decimal(11)}


def test_spring_gap_neither_loses_nor_moves_a_movement(rigs: list[Rig]) -> None:
    """Berlin 2024-03-31 02:00 CET → 03:00 CEST: bills on both sides of the gap, and one
    whose business date reads 02:30 (a time that did not exist) stays on its day."""
    zone = ZoneInfo("Europe/Berlin")
    rig = Rig("Europe/Berlin", local("2024-03-31 01:58"))
    rigs.append(rig)
    rig.bill(local("2024-03-31 01:59"), "1")
    rig.cycle_at(local("2024-03-31 01:59:30"))
    rig.bill(local("2024-03-31 03:00:30"), "10", date_=local("2024-03-31 02:30"))
    rig.cycle_at(local("2024-03-31 03:01"))
    assert rig.ledger.levels() == {("P1", "CK001"): Decimal(11)}
    (moved,) = [
        m for p in rig.source.pull("purchase_receipt", None, 10) for m in p.movements if m.qty == 10
    ]
    assert moved.occurred_at.astimezone(zone).date() == date(2024, 3, 31)


@pytest.mark.parametrize(
    ("zone", "moment", "expected"),
    [
        ("Europe/Berlin", "2024-10-27 00:48+00:00", "2024-10-27 02:00:00"),  # reaches back
        ("Europe/Berlin", "2024-10-27 01:30+00:00", "2024-10-27 02:30:00"),  # after the change
        ("Europe/Berlin", "2024-03-31 00:58+00:00", "2024-03-31 01:58:00"),  # spring: no reach
        ("Australia/Lord_Howe", "2024-04-06 14:50+00:00", "2024-04-07 01:30:00"),
        ("Asia/Shanghai", "2024-10-27 00:48+00:00", "2024-10-27 08:48:00"),  # no DST at all
        ("UTC", "2024-10-27 00:48:59.7+00:00", "2024-10-27 00:48:59"),
    ],
)
def test_earliest_local_reading(zone: str, moment: str, expected: str) -> None:
    """The least wall-clock reading at or after an instant; every later instant reads no
    earlier (checked minute by minute over the next three hours)."""
    at = datetime.fromisoformat(moment)
    least = earliest_local_reading(at, ZoneInfo(zone))
    assert least == datetime.fromisoformat(expected)
    for minutes in range(0, 180):
        later = (at + timedelta(minutes=minutes)).astimezone(ZoneInfo(zone))
        assert later.replace(tzinfo=None) >= least


def test_history_since_is_midnight_in_the_erp_zone(rigs: list[Rig]) -> None:
    """pull.history_since 2024-03-31 with erp.timezone Europe/Berlin starts at 23:00 UTC the
    day before: a bill stamped 00:30 local is in, one stamped 23:30 the day before is not."""
    rig = Rig("Europe/Berlin", local("2024-03-30 23:30"), history_since=date(2024, 3, 31))
    rigs.append(rig)
    rig.bill(local("2024-03-30 23:30"), "100")
    rig.bill(local("2024-03-31 00:30"), "1")
    rig.cycle_at(local("2024-03-31 08:00"))
    assert rig.ledger.levels() == {("P1", "CK001"): Decimal(1)}
    assert source_zone(rig.source) == ZoneInfo("Europe/Berlin")


def test_start_cursor_and_day_start_use_the_zone(store: object) -> None:
    from sync.state import StateStore

    assert isinstance(store, StateStore)
    options = PullOptions(history_since=date(2024, 10, 27))
    cursor = start_cursor(store, "p", "s", options, ZoneInfo("Asia/Shanghai"))
    assert cursor == Cursor(datetime(2024, 10, 26, 16, 0, tzinfo=UTC), "")
    assert start_cursor(store, "p", "s", options) == Cursor(datetime(2024, 10, 27, tzinfo=UTC))
    # a midnight the clock skipped (Havana, 2024-03-10 00:00 → 01:00): the day began at 05:00 UTC
    assert day_start(date(2024, 3, 10), ZoneInfo("America/Havana")) == datetime(
        2024, 3, 10, 5, 0, tzinfo=UTC
    )

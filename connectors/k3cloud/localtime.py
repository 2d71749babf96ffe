"""The ERP's naive local times against our aware instants, across daylight-saving changes.

K/3 Cloud stores FModifyDate, FApproveDate and FDate as naive local times, and a
FilterString compares them as such. Where the clock goes back (the repeated
autumn hour) a later instant can have an *earlier* local reading, so the local
time of an instant is not a safe lower bound for the rows stamped after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

#: how far after an instant a backward change of the clock can still matter. A change
#: matters only while its jump back reaches below the instant's own reading: the largest
#: known jump is two hours, so a day is ample
HORIZON = timedelta(hours=24)
_STEP = timedelta(hours=1)
_SECOND = timedelta(seconds=1)


def local_reading(moment: datetime, zone: tzinfo) -> datetime:
    """What a wall clock in ``zone`` shows at ``moment`` (naive, whole seconds)."""
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0)


def earliest_local_reading(moment: datetime, zone: tzinfo) -> datetime:
    """The least naive local time shown at or after the aware ``moment``, whole seconds.

    ``FModifyDate >= <this>`` therefore matches every row stamped at or after
    ``moment`` in any zone, including a row stamped in the repeated hour after a
    row read before the change (Europe/Berlin: 02:20 CET after 02:50 CEST).
    Rows of the hour before ``moment`` may be read again; re-reading is harmless.
    """
    start = moment.astimezone(UTC)
    least = local_reading(start, zone)
    for change in _offset_changes(start, start + HORIZON, zone):
        least = min(least, local_reading(change, zone))
    return least


def _offset_changes(start: datetime, end: datetime, zone: tzinfo) -> list[datetime]:
    """Instants in (start, end] where ``zone``'s UTC offset changes, to the second
    (offsets sampled hourly; no zone changes twice within an hour)."""
    changes = []
    before, offset = start, start.astimezone(zone).utcoffset()
    while before < end:
        after = min(before + _STEP, end)
        later = after.astimezone(zone).utcoffset()
        if later != offset:
            changes.append(_first_with(before, after, later, zone))
            offset = later
        before = after
    return changes


def _first_with(low: datetime, high: datetime, offset: timedelta | None, zone: tzinfo) -> datetime:
    """The first second in (low, high] at which ``zone`` has ``offset`` (bisection)."""
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + _SECOND
        if middle.astimezone(zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high

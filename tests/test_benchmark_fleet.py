"""Scenario "fleet" of ``python -m benchmarks``: the figures it derives from the run log.

The scenario itself runs daemons for half a minute (CI's ``python -m benchmarks --quick``
runs it); these tests pin the arithmetic it reports with, on hand-made run logs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import make_url

from benchmarks.fleet_procs import Sample, connection_figures, with_app_name
from benchmarks.fleet_stats import (
    CycleRun,
    delays_behind_tick_s,
    drain_per_s,
    first_start_after,
    gaps_beyond_interval_s,
    overlaps,
    percentile,
    takeover_s,
    ticks,
)

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(pipeline: str, runner: str, start: float, end: float | None) -> CycleRun:
    return CycleRun(pipeline, runner, at(start), None if end is None else at(end))


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 95, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([float(i) for i in range(1, 101)], 95, 95.05),
        ([3.0, 1.0, 2.0], 0, 1.0),
        ([3.0, 1.0, 2.0], 100, 3.0),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], 101), ([1.0], -1)])
def test_percentile_refuses_no_values_and_out_of_range(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_overlaps_finds_two_cycles_of_one_pipeline_at_once() -> None:
    runs = [
        run("p1", "a", 0, 1),
        run("p1", "a", 10, 11),
        run("p2", "a", 0, 5),
        run("p2", "b", 4, 6),  # p2 started on b while a's run still went on
        run("p3", "a", 0, 1),
    ]
    assert overlaps(runs, killed={}) == [(runs[2], runs[3])]


def test_a_killed_replicas_open_run_ends_at_the_kill() -> None:
    runs = [run("p1", "c", 0, None), run("p1", "a", 5, 6)]
    assert overlaps(runs, killed={"c": at(3)}) == []
    assert overlaps(runs, killed={"c": at(5.5)}) == [(runs[0], runs[1])]
    # an open run on a live replica, followed by another: nothing ended it
    assert overlaps(runs, killed={}) == [(runs[0], runs[1])]


def test_gaps_beyond_interval_are_measured_between_consecutive_starts() -> None:
    starts = [at(20.5), at(0), at(10.2), at(40.5)]  # unsorted; 30 s skipped
    assert gaps_beyond_interval_s(starts, 10) == pytest.approx([0.2, 0.3, 10.0])
    assert gaps_beyond_interval_s([at(0)], 10) == []


def test_ticks_group_the_starts_that_fell_due_together() -> None:
    starts = [at(x) for x in (0, 0.1, 2.4, 10.0, 10.3, 14.0, 20.2)]
    grouped = ticks(starts, 10)
    assert [len(t) for t in grouped] == [3, 3, 1]
    assert delays_behind_tick_s(starts, 10) == pytest.approx([0, 0.1, 2.4, 0, 0.3, 4.0, 0])


def test_drain_counts_only_ticks_with_a_queue() -> None:
    # 41 starts over 2 s: 20/s; a tick of 3 (no queue behind 16 workers) is left out
    busy = [at(i * 0.05) for i in range(41)]
    quiet = [at(10), at(10.001), at(10.5)]
    assert drain_per_s(busy + quiet, 10, workers=16) == pytest.approx([20.0])
    assert drain_per_s(quiet, 10, workers=16) == []


def test_takeover_is_the_last_pipeline_taken_and_none_when_one_never_was() -> None:
    kill = at(100)
    when = {"p1": at(103.5), "p2": at(104.25)}
    assert takeover_s(kill, ["p1", "p2"], when) == (pytest.approx(4.25), [])
    assert takeover_s(kill, ["p1", "p2", "p3"], when) == (None, ["p3"])
    assert takeover_s(kill, [], when) == (None, [])


def test_first_start_after_ignores_the_victim_and_earlier_runs() -> None:
    runs = [
        run("p1", "c", 99, 99.5),  # before the kill
        run("p1", "c", 101, None),  # the victim's (impossible after a kill, but not counted)
        run("p1", "a", 106, 106.1),
        run("p1", "a", 104, 104.1),
        run("p2", "b", 103, 103.2),
    ]
    first = first_start_after(runs, at(100), not_by="c")
    assert first == {"p1": at(104), "p2": at(103)}


def test_connection_figures_peak_and_median_per_replica() -> None:
    samples = [
        Sample(0.0, {"fleet-a": 3}),
        Sample(0.2, {"fleet-a": 19, "fleet-b": 12}),
        Sample(0.4, {"fleet-a": 19, "fleet-b": 13}),
    ]
    figures = connection_figures(samples, ["fleet-a", "fleet-b"])
    assert (figures["peak"], figures["median"]) == (32, 31)
    assert figures["per_replica_peak"] == {"fleet-a": 19, "fleet-b": 13}
    assert figures["per_replica_median"] == {"fleet-a": 19, "fleet-b": 12}
    assert connection_figures([], ["fleet-a"]) == {"samples": 0}


def test_application_name_is_added_to_the_url_and_keeps_the_rest() -> None:
    url = with_app_name("postgresql://bench:s3cret@db.example:5432/fleet?sslmode=disable", "x")
    parsed = make_url(url)
    assert parsed.query == {"sslmode": "disable", "application_name": "x"}
    assert (parsed.password, parsed.database) == ("s3cret", "fleet")

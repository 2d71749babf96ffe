"""The one backoff rule, shared by HTTP retries and outbox rescheduling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tenacity import RetryCallState, Retrying

from connectors._http import backoff_wait
from sync.backoff import backoff_s
from sync.errors import TransientError


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 15.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 120.0), (7, 960.0, 1920.0), (8, 1800.0, 3600.0)],
)
def test_doubles_with_jitter_in_the_upper_half(attempt: int, low: float, high: float) -> None:
    waits = [backoff_s(attempt, initial_s=30, max_s=3600) for _ in range(200)]
    assert all(low <= w <= high for w in waits)
    assert len(set(waits)) > 1  # jittered: clients that failed together spread out


def test_capped_at_max_even_after_very_many_attempts() -> None:
    waits = [backoff_s(n, initial_s=0.5, max_s=60) for n in (20, 2000, 10**6)]
    assert all(30.0 <= w <= 60.0 for w in waits)


@pytest.mark.parametrize(("hint", "expected"), [(7.5, 7.5), (0.0, 0.0), (86400.0, 3600.0)])
def test_a_server_hint_wins_up_to_the_cap(hint: float, expected: float) -> None:
    assert backoff_s(1, initial_s=30, max_s=3600, hint_s=hint) == expected


def test_no_jitter_is_exact() -> None:
    assert backoff_s(4, initial_s=0.5, max_s=60, jitter=0) == 4.0


def _state(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_the_http_wait_is_the_same_rule() -> None:
    wait = backoff_wait(initial_s=0.5, max_s=60.0)
    assert wait(_state(3, TransientError("busy", retry_after_s=12))) == 12.0
    assert wait(_state(3, TransientError("busy", retry_after_s=600))) == 60.0
    assert all(1.0 <= wait(_state(3, TransientError("busy"))) <= 2.0 for _ in range(100))
    assert timedelta(seconds=wait(_state(1, TransientError("busy")))) <= timedelta(seconds=0.5)

"""The rate limiter's window starts when a call's answer is in, not when it was sent."""

from __future__ import annotations

from connectors._http import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_a_slow_answer_pushes_the_window_back() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
    with limiter.slot("/p"):
        clock.t += 0.5  # the server counted the call somewhere in these 0.5 s
    with limiter.slot("/p"):
        pass
    with limiter.slot("/p") as waited:
        # 10 s after the first answer (0.5), not after the first send (0.0)
        assert clock.t >= 10.5
        assert waited > 0


def test_acquire_keeps_its_meaning() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 5.0, clock=clock, sleep=clock.sleep)
    assert limiter.acquire("/p") == 0.0
    assert limiter.acquire("/p") > 0.0
    assert clock.t >= 5.0

"""The org's daily API allocation (reference §9): a rolling 24 h count of API calls.

Every admitted REST call counts (``GET /limits`` counts itself); the token endpoint
and the versions list do not. Once the count reaches the allocation a call is refused
with 403 ``REQUEST_LIMIT_EXCEEDED`` and not counted. ``header()`` is the value of the
``Sforce-Limit-Info`` header every API answer carries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from connectors.salesforce.emulator_rules import ApiError

DAY_S = 86_400.0
#: §9: 100,000 + per-licence adders; the emulated org has no licences
DEFAULT_DAILY_LIMIT = 100_000


def limit_exceeded() -> ApiError:
    return ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


class ApiAllocation:
    """Calls in the last 24 h (their times) against ``limit``."""

    def __init__(self, clock: Callable[[], float], limit: int = DEFAULT_DAILY_LIMIT) -> None:
        self.clock, self.limit = clock, limit
        self._calls: deque[float] = deque()

    def usage(self) -> tuple[int, int]:
        """(calls in the last 24 h, allocation)."""
        now = self.clock()
        while self._calls and now - self._calls[0] >= DAY_S:
            self._calls.popleft()
        return len(self._calls), self.limit

    def set(self, used: int | None = None, limit: int | None = None) -> None:
        if limit is not None:
            self.limit = limit
        if used is not None:
            self._calls = deque([self.clock()] * used)

    def admit(self) -> None:
        """Count one call, or 403 REQUEST_LIMIT_EXCEEDED when the allocation is used up."""
        used, limit = self.usage()
        if used >= limit:
            raise limit_exceeded()
        self._calls.append(self.clock())

    def refund(self) -> None:
        """Take back the last call (one the org refused before doing anything)."""
        if self._calls:
            self._calls.pop()

    def header(self) -> str:
        return "api-usage={}/{}".format(*self.usage())

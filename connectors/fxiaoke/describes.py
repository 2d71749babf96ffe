"""Object describes of the tenant, cached: which fields exist, which are required, and
how many decimal places each number field holds.

A describe changes when an admin edits the object, which is rare; the cache keeps
each one for ``ttl_s`` so that pushes, reconcile and the idle liveness check never
describe per call (issue: describe every interval was the dearest idle cost).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger("stocksync.fxiaoke")

Json = dict[str, Any]
#: field types that are never sent by a write (reference §5.3, §7)
_NOT_WRITTEN = frozenset({"auto_number", "system", "quote", "formula", "count"})


class Describer(Protocol):
    def describe(self, api_name: str) -> Json: ...


@dataclass(frozen=True)
class ObjectFields:
    """The parts of one describe the sink uses."""

    api_name: str
    fields: dict[str, Json]
    #: field → decimal places from the settings, over what the describe says
    places: Mapping[str, int] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.fields

    def decimal_places(self, name: str) -> int | None:
        """Digits a number field holds: the setting, else the describe's ``decimal_places``
        [I: key name inferred], else None (the value is written unrounded)."""
        if name in self.places:
            return self.places[name]
        value = self.fields.get(name, {}).get("decimal_places")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        return value

    def required(self) -> list[str]:
        """Required fields a write must fill (auto-numbered, quote and system ones excluded)."""
        return sorted(
            name
            for name, f in self.fields.items()
            if f.get("is_required") is True and f.get("type") not in _NOT_WRITTEN
        )


class DescribeCache:
    """Describes per object, fetched on first use and again after ``ttl_s`` seconds."""

    def __init__(
        self,
        client: Describer,
        *,
        ttl_s: float,
        clock: Callable[[], float],
        places: Mapping[str, int] | None = None,
    ) -> None:
        self._client = client
        self._places = dict(places or {})
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[ObjectFields, float]] = {}
        #: describe calls this cache made (tests and the liveness check read it)
        self.fetches = 0

    def get(self, api_name: str) -> ObjectFields:
        """The object's fields; raises what ``describe`` raises (PermanentError: no such object)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(api_name)
            if cached is not None and now < cached[1]:
                return cached[0]
        describe = self._client.describe(api_name)
        fields = describe.get("fields")
        found = ObjectFields(api_name, fields if isinstance(fields, dict) else {}, self._places)
        with self._lock:
            self._cache[api_name] = (found, now + self._ttl_s)
            self.fetches += 1
        log.debug("describe_cached", object=api_name, fields=len(found.fields))
        return found

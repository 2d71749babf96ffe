"""ERP code ↔ CRM id for products and warehouses, cached both ways.

Misses are cached too, for ``ttl_s``: a blocked row is re-checked every cycle,
and without that a thousand blocked rows would cost a thousand queries per cycle.
After the TTL a miss is asked again, so a product created later is found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from connectors.fxiaoke.client import FxiaokeClient, flt
from sync.errors import UnmappedError

IN_CHUNK = 100


class CodeResolver:
    def __init__(
        self,
        client: FxiaokeClient,
        *,
        what: str,
        api_name: str,
        code_field: str,
        explicit: Mapping[str, str],
        ttl_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self.what = what
        self._api_name = api_name
        self._code_field = code_field
        self._ttl_s = ttl_s
        self._clock = clock
        self._ids: dict[str, str] = dict(explicit)
        self._codes: dict[str, str] = {v: k for k, v in explicit.items()}
        self._misses: dict[str, float] = {}
        self._lock = threading.Lock()

    def id_for(self, code: str) -> str:
        """The CRM id of ``code``; UnmappedError when the CRM does not know it."""
        with self._lock:
            if code in self._ids:
                return self._ids[code]
            missed = self._misses.get(code)
            if missed is not None and self._clock() - missed < self._ttl_s:
                raise self._unmapped(code)
        ids = self._client.find_ids(self._api_name, [flt(self._code_field, "EQ", code)])
        with self._lock:
            if not ids:
                self._misses[code] = self._clock()
                raise self._unmapped(code)
            self._misses.pop(code, None)
            self._remember(code, ids[0])
            return ids[0]

    def resolve_many(self, codes: Iterable[str]) -> None:
        """Look up every code not known yet (nor missed within the TTL), ``IN_CHUNK`` a query.

        A first push onto a CRM with no stock records for most products would
        otherwise cost one query per product; ``id_for`` then answers from the cache.
        """
        now = self._clock()
        with self._lock:
            wanted = sorted(
                {
                    code
                    for code in codes
                    if code not in self._ids
                    and not (code in self._misses and now - self._misses[code] < self._ttl_s)
                }
            )
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            rows = self._client.iter_query(
                self._api_name, [flt(self._code_field, "IN", *chunk)], fields=[self._code_field]
            )
            found: set[str] = set()
            for row in rows:  # by _id: the oldest record of a code wins, as in id_for
                code, crm_id = row.get(self._code_field), row.get("_id")
                if code and crm_id:
                    with self._lock:
                        self._remember(str(code), str(crm_id))
                    found.add(str(code))
            with self._lock:
                for code in chunk:
                    if code in found:
                        self._misses.pop(code, None)
                    else:
                        self._misses[code] = now

    def codes_for(self, crm_ids: Iterable[str]) -> dict[str, str]:
        """CRM id → ERP code for every id the CRM can map (unknown ids are left out)."""
        wanted = set(crm_ids)
        with self._lock:
            missing = sorted(i for i in wanted if i not in self._codes)
        for start in range(0, len(missing), IN_CHUNK):
            chunk = missing[start : start + IN_CHUNK]
            rows = self._client.iter_query(
                self._api_name, [flt("_id", "IN", *chunk)], fields=[self._code_field]
            )
            for row in rows:
                code = row.get(self._code_field)
                if code:
                    with self._lock:
                        self._remember(str(code), str(row["_id"]))
        with self._lock:
            return {i: self._codes[i] for i in wanted if i in self._codes}

    def _remember(self, code: str, crm_id: str) -> None:
        self._ids.setdefault(code, crm_id)
        self._codes.setdefault(crm_id, code)

    def _unmapped(self, code: str) -> UnmappedError:
        return UnmappedError(
            f"the CRM has no {self._api_name} with {self._code_field} = {code!r}",
            what=self.what,
            code=code,
        )

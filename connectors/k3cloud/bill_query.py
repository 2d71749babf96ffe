"""The emulator's ExecuteBillQuery: validation, the Limit cap and paging, over the store.

Answers from StartRow 0 seek in rows kept sorted per OrderString, as a database
seeks an index, so keyset paging costs one page per answer; answers from a later
StartRow (offset paging) slice a filtered result kept between pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from connectors.k3cloud import query as q
from connectors.k3cloud.store import KNOWN_FORMS, Store


class BillQueries:
    """ExecuteBillQuery over one store; caches live until the store's next change.

    ``max_limit`` is the server's row cap per answer (reference §3.1: 2000, or 10,000
    from patch 23.11, set by ``WebAPIMaxQueryLimit``); a larger ``Limit`` is cut to it
    (``limit_over_cap="cap"``) or refused with MsgCode 8 (``"refuse"``): the reference
    does not say which a server does.
    """

    def __init__(
        self, store: Store, *, max_limit: int, limit_over_cap: Literal["cap", "refuse"]
    ) -> None:
        self.store = store
        self.max_limit = max_limit
        self.limit_over_cap = limit_over_cap
        self._query_cache: dict[tuple[Any, ...], list[q.Row]] = {}
        self._sorted_cache: dict[tuple[Any, ...], tuple[list[q.Row], list[Any] | None]] = {}
        self._cache_version = -1

    def run(self, params: Mapping[str, Any]) -> tuple[list[str], list[q.Row]]:
        """Validate and evaluate one ExecuteBillQuery parameter object → (keys, page rows)."""
        form_id = str(params.get("FormId") or "")
        keys = [k.strip() for k in str(params.get("FieldKeys") or "").split(",") if k.strip()]
        if not form_id or not keys:
            raise q.QueryError(8, "参数错误：FormId 和 FieldKeys 不能为空")
        if form_id not in KNOWN_FORMS:
            raise q.QueryError(4, f"业务对象 {form_id} 不存在")
        fields = self.store.fields(form_id)
        for key in keys:
            if key.lower() not in fields:
                raise q.missing_field(key)
        try:
            start = int(params.get("StartRow") or 0)
            limit = int(params.get("Limit") or 0)
            top = int(params.get("TopRowCount") or 0)
        except (TypeError, ValueError) as exc:
            raise q.QueryError(8, "参数错误：StartRow/Limit/TopRowCount 必须是整数") from exc
        size = self._page_size(limit)
        return keys, self._page(form_id, params, fields, start, size, top)

    def _page_size(self, limit: int) -> int:
        """Rows one answer may hold: ``Limit`` up to the cap (0 = the cap)."""
        if limit > self.max_limit and self.limit_over_cap == "refuse":
            raise q.QueryError(8, f"参数错误：Limit 不能超过{self.max_limit}")
        return limit if 0 < limit <= self.max_limit else self.max_limit

    def _page(
        self,
        form_id: str,
        params: Mapping[str, Any],
        fields: dict[str, q.FieldType],
        start: int,
        size: int,
        top: int,
    ) -> list[q.Row]:
        """One answer's rows, out of the rows kept sorted per OrderString. From row 0 the
        scan starts at the first row the filter's bounds allow (keyset paging); from a
        later StartRow the filtered rows are kept between pages (offset paging)."""
        self._check_cache()
        spec, order_spec = params.get("FilterString"), params.get("OrderString")
        end = start + size if top <= 0 else min(start + size, top)
        order = q.parse_order(order_spec, fields)
        compiled = q.compile_filter_bounds(spec, fields)
        rows, index = self._sorted(form_id, order_spec, order)
        if compiled is None:
            return rows[start:end]
        predicate, bounds = compiled
        if start > 0:
            return self._matching(form_id, spec, order_spec, predicate, rows)[start:end]
        begin = q.seek(index, bounds.get(order[0][0])) if index is not None else 0
        return q.first_matching(rows, predicate, begin, end)

    def _check_cache(self) -> None:
        if self._cache_version != self.store.version:
            self._query_cache.clear()
            self._sorted_cache.clear()
            self._cache_version = self.store.version

    def _sorted(
        self, form_id: str, order_spec: Any, order: list[tuple[str, bool]]
    ) -> tuple[list[q.Row], list[Any] | None]:
        """A form's rows in OrderString order, and the sort keys of the first order field
        when it is ascending (what ``q.seek`` bisects); cached until the next change."""
        cache_key = (form_id, json.dumps(order_spec, default=str))
        cached = self._sorted_cache.get(cache_key)
        if cached is None:
            rows = self.store.rows(form_id)
            ordered = q.sort_rows(rows, order) if order else list(rows)
            index = q.seek_index(ordered, order[0][0]) if order and not order[0][1] else None
            cached = (ordered, index)
            self._sorted_cache[cache_key] = cached
        return cached

    def _matching(
        self, form_id: str, spec: Any, order_spec: Any, predicate: q.Predicate, rows: list[q.Row]
    ) -> list[q.Row]:
        """The sorted ``rows`` that match; cached until the next change."""
        cache_key = (form_id, json.dumps(spec, default=str), json.dumps(order_spec, default=str))
        cached = self._query_cache.get(cache_key)
        if cached is None:
            cached = [row for row in rows if predicate(row)]
            if len(self._query_cache) > 32:
                self._query_cache.clear()
            self._query_cache[cache_key] = cached
        return cached

"""The emulator's in-memory object store: seeded describes, records, query evaluation.

Kept apart from the HTTP layer (``emulator.py``) so the query semantics can be
read and tested on their own. Everything here raises ``ApiError`` carrying the
Fxiaoke errorCode the real gateway would answer with (or our best inference
where the reference marks the code as unknown); the write rules are in
``emulator_rules``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connectors.fxiaoke.emulator_describes import NUMBER_TYPES, ObjectDescribe, seeded_describes
from connectors.fxiaoke.emulator_rules import (
    ERR_BUSINESS,
    ERR_PAGING,
    ERR_PARAM,
    MS_TYPES,
    ApiError,
    check_format,
    check_required,
    check_writable,
)
from connectors.fxiaoke.emulator_rules import as_decimal as _as_decimal
from connectors.fxiaoke.emulator_rules import empty as _empty

__all__ = ["ERR_BUSINESS", "ERR_PAGING", "ERR_PARAM", "ApiError", "ObjectTable", "Store"]

OPERATORS = frozenset(
    {"EQ", "N", "GT", "GTE", "LT", "LTE", "LIKE", "NLIKE", "IS", "ISN", "IN", "NIN"}
    | {"BETWEEN", "NBETWEEN", "STARTWITH", "ENDWITH", "CONTAINS", "HASANYOF", "NHASANYOF"}
)


def _key(value: Any, numeric: bool) -> Any:
    """Comparable form of a stored value or a filter value."""
    if numeric:
        num = _as_decimal(value)
        return num if num is not None else Decimal(0)
    return "" if value is None else str(value)


def _any_in(value: Any, w: list[Any], numeric: bool) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(_key(v, numeric) in w for v in values)


def _between(value: Any, k: Any, w: list[Any]) -> bool:
    return len(w) == 2 and not _empty(value) and w[0] <= k <= w[1]


def _ordered(compare: Callable[[Any, Any], bool]) -> Matcher:
    return lambda value, k, w, _n: not _empty(value) and bool(w) and compare(k, w[0])


def _text(test: Callable[[str, str], bool]) -> Matcher:
    return lambda _v, k, w, _n: test(str(k), str(w[0]) if w else "")


#: (stored value, its comparable key, prepared filter keys, numeric?) → passes?
Matcher = Callable[[Any, Any, list[Any], bool], bool]
_OPERATORS: dict[str, Matcher] = {
    "EQ": lambda value, k, w, _n: not _empty(value) and bool(w) and k == w[0],
    "N": lambda _v, k, w, _n: not w or k != w[0],
    "GT": _ordered(lambda a, b: a > b),
    "GTE": _ordered(lambda a, b: a >= b),
    "LT": _ordered(lambda a, b: a < b),
    "LTE": _ordered(lambda a, b: a <= b),
    "IN": lambda value, _k, w, n: _any_in(value, w, n),
    "HASANYOF": lambda value, _k, w, n: _any_in(value, w, n),
    "NIN": lambda value, _k, w, n: not _any_in(value, w, n),
    "NHASANYOF": lambda value, _k, w, n: not _any_in(value, w, n),
    "BETWEEN": lambda value, k, w, _n: _between(value, k, w),
    "NBETWEEN": lambda value, k, w, _n: not _between(value, k, w),
    "LIKE": _text(lambda text, needle: needle in text),
    "CONTAINS": _text(lambda text, needle: needle in text),
    "NLIKE": _text(lambda text, needle: needle not in text),
    "STARTWITH": _text(lambda text, needle: text.startswith(needle)),
    "ENDWITH": _text(lambda text, needle: text.endswith(needle)),
    "IS": lambda value, _k, _w, _n: _empty(value),
    "ISN": lambda value, _k, _w, _n: not _empty(value),
}


def _match_one(op: str, value: Any, w: list[Any], numeric: bool) -> bool:
    """Does a stored ``value`` pass operator ``op`` against the prepared filter keys ``w``?"""
    matcher = _OPERATORS.get(op)
    if matcher is None:
        raise ApiError(ERR_PARAM, f"unsupported operator {op}", "参数错误")
    return matcher(value, _key(value, numeric), w, numeric)


@dataclass
class ObjectTable:
    """Records of one object plus lazily built equality indexes."""

    describe: ObjectDescribe
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    indexes: dict[str, dict[Any, set[str]]] = field(default_factory=dict)
    #: every _id, ascending (ids are minted ascending, so this is nearly always an append)
    order: list[str] = field(default_factory=list)

    def index(self, name: str) -> dict[Any, set[str]]:
        if name not in self.indexes:
            built: dict[Any, set[str]] = {}
            for rid, rec in self.records.items():
                built.setdefault(self._ikey(rec.get(name)), set()).add(rid)
            self.indexes[name] = built
        return self.indexes[name]

    @staticmethod
    def _ikey(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    def put(self, rec: dict[str, Any], old: dict[str, Any] | None) -> None:
        rid = rec["_id"]
        for name, idx in self.indexes.items():
            if old is not None:
                idx.get(self._ikey(old.get(name)), set()).discard(rid)
            idx.setdefault(self._ikey(rec.get(name)), set()).add(rid)
        if old is None:
            if not self.order or rid > self.order[-1]:
                self.order.append(rid)
            else:
                bisect.insort(self.order, rid)
        self.records[rid] = rec

    def remove(self, rid: str) -> None:
        old = self.records.pop(rid)
        self.order.remove(rid)
        for name, idx in self.indexes.items():
            idx.get(self._ikey(old.get(name)), set()).discard(rid)


class Store:
    """All objects of one emulated tenant."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: the reference is silent on editing a voided (作废) record: True refuses it with
        #: 32000 数据已作废, False accepts the edit and the record stays voided
        self.voided_edit_refused = True
        self.tables = {name: ObjectTable(d) for name, d in seeded_describes().items()}
        self._seq = itertools.count(1)
        self._machine = os.urandom(5).hex()

    def table(self, api_name: str) -> ObjectTable:
        try:
            return self.tables[api_name]
        except KeyError:
            raise ApiError(
                ERR_BUSINESS, f"object {api_name} does not exist", "对象不存在"
            ) from None

    def new_id(self) -> str:
        """A 24-hex id shaped like a Mongo ObjectId (time, machine, counter), ascending."""
        return (
            f"{int(self.clock()) & 0xFFFFFFFF:08x}{self._machine}{next(self._seq) & 0xFFFFFF:06x}"
        )

    # ------------------------------------------------------------------ writes
    def _validate(
        self, table: ObjectTable, rec: dict[str, Any], rid: str, changes: dict[str, Any]
    ) -> None:
        """Refuse what a real tenant refuses (``emulator_rules``; reference §5.3, §7, §10).

        ``changes`` are the fields the caller sent (checked for write bans and value
        formats); ``rec`` is the record they make (checked for required and unique).
        """
        fields = table.describe.fields
        for name, value in changes.items():
            fd = fields.get(name)
            check_writable(name, fd)
            if fd is not None and not _empty(value):
                check_format(fd, value)
                if fd.target and (
                    not isinstance(value, str) or value not in self.table(fd.target).records
                ):
                    raise ApiError(ERR_BUSINESS, f"field {name}: {fd.target} {value} not found")
        for name, fd in fields.items():
            value = rec.get(name)
            check_required(fd, value)
            if fd.unique and not _empty(value) and (table.index(name).get(value, set()) - {rid}):
                raise ApiError(
                    ERR_BUSINESS,
                    f"duplicate value for unique field {name}",
                    f"{fd.label}重复 duplicate",
                )

    def create(self, api_name: str, data: dict[str, Any]) -> dict[str, Any]:
        table = self.table(api_name)
        now_ms = int(self.clock() * 1000)
        rid = self.new_id()
        fields = {k: v for k, v in data.items() if k != "dataObjectApiName" and k != "_id"}
        rec = dict(fields)
        rec.update(
            _id=rid,
            create_time=now_ms,
            last_modified_time=now_ms,
            life_status="normal",
            is_deleted=False,
            object_describe_api_name=api_name,
        )
        rec.setdefault("record_type", "default__c")
        if table.describe.fields["name"].type == "auto_number" and _empty(rec.get("name")):
            day = time.strftime("%Y-%m-%d", time.gmtime(self.clock()))
            rec["name"] = f"SK{day}_{len(table.records) + 1:04d}"
        self._validate(table, rec, rid, fields)
        table.put(rec, None)
        return rec

    def get(self, api_name: str, rid: Any) -> dict[str, Any]:
        rec = self.table(api_name).records.get(str(rid))
        if rec is None:
            raise ApiError(ERR_BUSINESS, f"{api_name} {rid} does not exist", "数据不存在")
        return rec

    def update(self, api_name: str, data: dict[str, Any]) -> dict[str, Any]:
        table = self.table(api_name)
        rid = data.get("_id")
        if not rid:
            raise ApiError(ERR_PARAM, "object_data._id is required", "参数错误")
        old = self.get(api_name, rid)
        if old.get("life_status") == "invalid" and self.voided_edit_refused:
            # [I] the reference (§5, §6) names no answer for editing a voided record: refused
            # as for one that does not exist ("库存记录不存在", §6), or (switch off) accepted
            # with the record staying voided; stocksync is tested against both
            raise ApiError(ERR_BUSINESS, f"{api_name} {rid} is invalid", "数据已作废")
        changes = {k: v for k, v in data.items() if k not in {"dataObjectApiName", "_id"}}
        rec = {**old, **changes, "last_modified_time": int(self.clock() * 1000)}
        self._validate(table, rec, rid, changes)
        table.put(rec, old)
        return rec

    def set_status(self, api_name: str, ids: Iterable[Any], status: str) -> None:
        table = self.table(api_name)
        for rid in ids:
            old = self.get(api_name, rid)
            table.put({**old, "life_status": status, "is_deleted": status == "invalid"}, old)

    def delete(self, api_name: str, ids: Iterable[Any]) -> None:
        table = self.table(api_name)
        for rid in ids:
            if self.get(api_name, rid).get("life_status") != "invalid":
                raise ApiError(ERR_BUSINESS, f"{rid} must be invalidated before delete")
        for rid in ids:
            table.remove(str(rid))

    # ------------------------------------------------------------------ query
    def query(
        self, api_name: str, info: dict[str, Any], *, want_total: bool = False
    ) -> dict[str, Any]:
        """One page. ``total`` is only counted when asked for (the docs: it may be 0
        otherwise); that lets pages in ``_id`` order stop scanning early."""
        table = self.table(api_name)
        limit, offset = _paging(info)
        filters = info.get("filters") or []
        if not isinstance(filters, list):
            raise ApiError(ERR_PARAM, "filters must be a list", "参数错误")
        orders = info.get("orders") or []
        rows = self._filter(table, filters)
        natural = all(o.get("fieldName", "_id") == "_id" and o.get("isAsc", True) for o in orders)
        if natural and not want_total:
            page, total = list(itertools.islice(rows, offset, offset + limit)), 0
        else:
            matched = list(rows)
            for order in reversed(orders):
                name = str(order.get("fieldName", "_id"))
                matched.sort(
                    key=functools.partial(_sort_key, name, _is_numeric(table, name)),
                    reverse=not order.get("isAsc", True),
                )
            page, total = matched[offset : offset + limit], len(matched)
        projection = info.get("fieldProjection") or []
        keep = {"_id", *projection}
        page = [{k: v for k, v in r.items() if not projection or k in keep} for r in page]
        return {"dataList": page, "offset": offset, "limit": limit, "total": total}

    def _filter(
        self, table: ObjectTable, filters: list[dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """Matching records in ``_id`` order; EQ filters and ``_id`` lower bounds use indexes."""
        preds = [_compile(table, f) for f in filters]
        ids: set[str] | None = None
        lower: tuple[str, bool] | None = None  # (_id bound, inclusive)
        for flt in filters:
            name, op, values = flt.get("field_name"), flt.get("operator"), flt.get("field_values")
            if op == "EQ" and isinstance(values, list) and len(values) == 1:
                found = table.index(str(name)).get(values[0], set())
                ids = found if ids is None else ids & found
            elif name == "_id" and op in {"GT", "GTE"} and isinstance(values, list) and values:
                lower = (str(values[0]), op == "GTE")
        order = table.order
        if lower is not None:
            cut = (bisect.bisect_left if lower[1] else bisect.bisect_right)(order, lower[0])
            order = order[cut:]
        candidates: Iterable[str] = order
        if ids is not None:
            low = lower
            candidates = sorted(
                i for i in ids if low is None or (i >= low[0] if low[1] else i > low[0])
            )
        skip_invalid = not any(f.get("field_name") == "life_status" for f in filters)
        for rid in candidates:
            rec = table.records[rid]
            if skip_invalid and rec.get("life_status") == "invalid":
                continue
            if all(pred(rec) for pred in preds):
                yield rec


def _compile(table: ObjectTable, flt: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A filter as a record predicate, with its values converted once."""
    name = str(flt.get("field_name", ""))
    values = flt.get("field_values")
    if not isinstance(values, list):
        raise ApiError(ERR_PARAM, "field_values must be a list", "参数错误")
    op = str(flt.get("operator", "EQ")).upper()
    if op not in OPERATORS:
        raise ApiError(ERR_PARAM, f"unsupported operator {op}", "参数错误")
    numeric = _is_numeric(table, name)
    wanted = [_key(v, numeric) for v in values]
    return lambda rec: _match_one(op, rec.get(name), wanted, numeric)


def _sort_key(name: str, numeric: bool, rec: dict[str, Any]) -> Any:
    return _key(rec.get(name), numeric)


def _is_numeric(table: ObjectTable, name: str) -> bool:
    fd = table.describe.fields.get(name)
    return fd is not None and (
        fd.type in NUMBER_TYPES
        or fd.type in MS_TYPES
        or name in {"create_time", "last_modified_time"}
    )


def _paging(info: dict[str, Any]) -> tuple[int, int]:
    """Enforce the documented paging limits (reference §5.1)."""
    try:
        limit = int(info.get("limit", 20))
        offset = int(info.get("offset", 0))
    except (TypeError, ValueError):
        raise ApiError(ERR_PARAM, "limit and offset must be integers", "参数错误") from None
    if limit < 1 or limit > 100:
        raise ApiError(ERR_PAGING, "limit out of range 100", "limit 不能超过100")
    if offset < 0 or offset % limit:
        raise ApiError(
            ERR_PAGING, "offset must be a multiple of limit", "offset 必须是limit的整数倍"
        )
    if offset > 10000:
        raise ApiError(ERR_PAGING, "offset out of range 10000", "offset 不能超过10000")
    return limit, offset

"""The emulator's query engine: FilterString, OrderString and paging over flat rows.

Pure functions over rows that are dicts keyed by lower-case field key (K/3 Cloud
field keys are case-insensitive). Filters compile once into closures, so a query
is one O(n) pass plus one O(n log n) sort.
"""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

FieldType = Literal["str", "num", "date"]
Row = dict[str, Any]
Predicate = Callable[[Row], bool]
Token = tuple[str, str]
#: lower bounds a filter implies, field key → least value a matching row can hold
Bounds = dict[str, Any]
Compiled = tuple[Predicate, Bounds]

MSG_FIELD_MISSING = "元数据中标识为{}的字段不存在"


class QueryError(Exception):
    """A query the server refuses; carries the MsgCode for the error envelope."""

    def __init__(self, msg_code: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.msg_code = msg_code
        self.message = message
        self.field = field


def missing_field(name: str) -> QueryError:
    return QueryError(9, MSG_FIELD_MISSING.format(name), field=name)


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op><>|!=|>=|<=|=|>|<)
    | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
    | (?P<ident>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

#: "Compare" values of the JSON-array filter form → operators (a tolerant subset)
_JSON_COMPARE = {
    **{k: "=" for k in ("=", "==", "67", "eq", "equal", "equalto", "statusequalto")},
    **{k: "<>" for k in ("<>", "!=", "68", "ne", "notequal", "notequalto", "statusnotequalto")},
    **{k: ">" for k in (">", "gt", "greaterthan")},
    **{k: ">=" for k in (">=", "ge", "greaterorequal", "greaterthanorequalto")},
    **{k: "<" for k in ("<", "lt", "lessthan")},
    **{k: "<=" for k in ("<=", "le", "lessorequal", "lessthanorequalto")},
}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QueryError(8, f"FilterString 语法错误 near {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        tokens.append((kind, value))
        pos = match.end()
    return tokens


def parse_datetime(text: str) -> datetime:
    text = text.strip().replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise QueryError(8, f"无法识别的日期值 {text!r}")


def coerce(literal: str, kind: FieldType) -> Any:
    """A filter literal as the field's type, so comparisons are typed, not textual."""
    if kind == "date":
        return parse_datetime(literal)
    if kind == "num":
        try:
            return Decimal(literal)
        except InvalidOperation as exc:
            raise QueryError(8, f"无法识别的数值 {literal!r}") from exc
    return literal


class _Parser:
    """expr := term (OR term)* ; term := factor (AND factor)* ;
    factor := '(' expr ')' | field op literal | field [NOT] IN '(' literal, … ')'."""

    def __init__(self, tokens: list[Token], fields: Mapping[str, FieldType]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.fields = fields

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, label: str) -> Token:
        token = self.peek()
        if token is None or token[0] != kind:
            raise QueryError(8, f"FilterString 语法错误: expected {label} at token {self.pos}")
        self.pos += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "ident" and token[1].upper() == word

    def parse(self) -> Compiled:
        compiled = self.expr()
        if self.peek() is not None:
            raise QueryError(8, f"FilterString 语法错误: unexpected {self.peek()}")
        return compiled

    def expr(self) -> Compiled:
        parts = [self.term()]
        while self.is_word("OR"):
            self.pos += 1
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return _any([p for p, _ in parts]), _either_bounds([b for _, b in parts])

    def term(self) -> Compiled:
        parts = [self.factor()]
        while self.is_word("AND"):
            self.pos += 1
            parts.append(self.factor())
        if len(parts) == 1:
            return parts[0]
        return _all([p for p, _ in parts]), _both_bounds([b for _, b in parts])

    def factor(self) -> Compiled:
        token = self.peek()
        if token is not None and token[0] == "lp":
            self.pos += 1
            inner = self.expr()
            self.take("rp", ")")
            return inner
        name = self.take("ident", "field")[1]
        key = name.lower()
        if key not in self.fields:
            raise missing_field(name)
        kind = self.fields[key]
        negate = self.is_word("NOT")
        if negate:
            self.pos += 1
        if self.is_word("IN"):
            self.pos += 1
            values = self.literal_list(kind)
            return _membership(key, values, negate), {} if negate else _least(key, values)
        op = self.take("op", "operator")[1]
        value = self.literal(kind)
        bounds = {key: value} if op in (">", ">=", "=") else {}
        return _comparison(key, _OPS[op], value), bounds

    def literal(self, kind: FieldType) -> Any:
        token = self.peek()
        if token is None or token[0] not in ("str", "num"):
            raise QueryError(8, f"FilterString 语法错误: expected a value at token {self.pos}")
        self.pos += 1
        return coerce(token[1], kind)

    def literal_list(self, kind: FieldType) -> frozenset[Any]:
        self.take("lp", "(")
        values = [self.literal(kind)]
        while self.peek() == ("comma", ","):
            self.pos += 1
            values.append(self.literal(kind))
        self.take("rp", ")")
        return frozenset(values)


def _comparison(key: str, op: Callable[[Any, Any], bool], value: Any) -> Predicate:
    def predicate(row: Row) -> bool:
        current = row.get(key)
        if current is None:
            return False
        try:
            return op(current, value)
        except TypeError:
            return False

    return predicate


def _membership(key: str, values: frozenset[Any], negate: bool) -> Predicate:
    def predicate(row: Row) -> bool:
        current = row.get(key)
        return current is not None and (current in values) != negate

    return predicate


def _least(key: str, values: frozenset[Any]) -> Bounds:
    try:
        return {key: min(values)}
    except TypeError:
        return {}


def _both_bounds(parts: list[Bounds]) -> Bounds:
    """AND: every bound holds, so the greatest per field."""
    merged: Bounds = {}
    for bounds in parts:
        for key, value in bounds.items():
            try:
                merged[key] = value if key not in merged else max(merged[key], value)
            except TypeError:
                merged.pop(key, None)
    return merged


def _either_bounds(parts: list[Bounds]) -> Bounds:
    """OR: only a field bounded in every branch is bounded, by the least of them."""
    merged = dict(parts[0])
    for bounds in parts[1:]:
        for key in list(merged):
            try:
                merged[key] = min(merged[key], bounds[key])
            except (KeyError, TypeError):
                del merged[key]
    return merged


def _all(parts: list[Predicate]) -> Predicate:
    """AND as nested pairs: a generator per row cost more than the comparisons."""
    first, *rest = parts
    if not rest:
        return first
    second = _all(rest)
    return lambda row: first(row) and second(row)


def _any(parts: list[Predicate]) -> Predicate:
    first, *rest = parts
    if not rest:
        return first
    second = _any(rest)
    return lambda row: first(row) or second(row)


def json_filter_tokens(items: Sequence[Any]) -> list[Token]:
    """The JSON-array filter form (Left/FieldName/Compare/Value/Right/Logic) as tokens."""
    tokens: list[Token] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise QueryError(8, "FilterString 数组元素必须是对象")
        tokens += [("lp", "(")] * str(item.get("Left") or "").count("(")
        compare = _JSON_COMPARE.get(str(item.get("Compare", "=")).strip().lower())
        if compare is None:
            raise QueryError(8, f"不支持的比较符 {item.get('Compare')!r}")
        value = item.get("Value")
        kind = "num" if isinstance(value, int | float | Decimal) else "str"
        tokens += [("ident", str(item.get("FieldName", ""))), ("op", compare)]
        tokens.append((kind, "" if value is None else str(value)))
        tokens += [("rp", ")")] * str(item.get("Right") or "").count(")")
        if index < len(items) - 1:
            logic = str(item.get("Logic", "AND")).strip().upper()
            tokens.append(("ident", "OR" if logic in ("OR", "1") else "AND"))
    return tokens


def compile_filter(spec: Any, fields: Mapping[str, FieldType]) -> Predicate | None:
    """A FilterString (text or JSON array, or a JSON array as text) → predicate; None = all."""
    compiled = compile_filter_bounds(spec, fields)
    return None if compiled is None else compiled[0]


def compile_filter_bounds(spec: Any, fields: Mapping[str, FieldType]) -> Compiled | None:
    """``compile_filter`` plus the lower bound per field that every matching row meets.

    The bounds let the emulator seek in rows sorted on a bounded field, as a
    database seeks an index, so keyset paging costs one page, not one scan.
    """
    if spec is None or spec == "" or spec == []:
        return None
    if isinstance(spec, str) and spec.lstrip().startswith("["):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise QueryError(8, "FilterString 不是合法的 JSON 数组") from exc
    if isinstance(spec, list):
        tokens = json_filter_tokens(spec)
    elif isinstance(spec, str):
        tokens = tokenize(spec)
    else:
        raise QueryError(8, "FilterString 类型错误")
    return _Parser(tokens, fields).parse() if tokens else None


def parse_order(spec: Any, fields: Mapping[str, FieldType]) -> list[tuple[str, bool]]:
    """OrderString → [(lower-case key, descending)]."""
    if not spec:
        return []
    if not isinstance(spec, str):
        raise QueryError(8, "OrderString 类型错误")
    order: list[tuple[str, bool]] = []
    for part in spec.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise QueryError(8, f"OrderString 语法错误: {part.strip()!r}")
        if words[0].lower() not in fields:
            raise missing_field(words[0])
        order.append((words[0].lower(), len(words) == 2 and words[1].upper() == "DESC"))
    return order


def sort_rows(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    """Stable multi-key sort (one pass per key, last key first); None sorts first."""
    result = list(rows)
    for key, descending in reversed(order):
        try:
            result.sort(key=lambda r: (r.get(key) is not None, r.get(key)), reverse=descending)
        except TypeError:
            result.sort(key=lambda r: (r.get(key) is not None, str(r.get(key))), reverse=descending)
    return result


def page_bounds(total: int, start_row: int, limit: int, top_row_count: int, cap: int) -> range:
    """Rows [StartRow, end): Limit capped (0 = the cap), TopRowCount an absolute end row."""
    start = max(0, start_row)
    size = limit if 0 < limit <= cap else cap
    end = start + size
    if top_row_count > 0:
        end = min(end, top_row_count)
    return range(start, max(start, min(end, total)))


def seek_index(rows: Sequence[Row], key: str) -> list[Any] | None:
    """Sort keys of ``rows`` (sorted ascending on ``key``, None first) for ``seek``;
    None when the values do not compare with each other."""
    index = [(row.get(key) is not None, row.get(key)) for row in rows]
    try:
        if any(a > b for a, b in itertools.pairwise(index)):
            return None
    except TypeError:
        return None
    return index


def seek(index: Sequence[Any], bound: Any) -> int:
    """The first position whose value can meet a lower ``bound`` (0 when unbounded)."""
    if bound is None:
        return 0
    try:
        return bisect.bisect_left(index, (True, bound))
    except TypeError:
        return 0


def first_matching(rows: Sequence[Row], predicate: Predicate, begin: int, end: int) -> list[Row]:
    """Matching rows number 0 … ``end`` − 1 (counted from ``begin``), scanning no further."""
    found: list[Row] = []
    for position in range(begin, len(rows)):
        if len(found) >= end:
            break
        row = rows[position]
        if predicate(row):
            found.append(row)
    return found

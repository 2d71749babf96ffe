"""The SOQL subset a sink uses (reference §5, §11.4): parse, check against describe, run.

``SELECT`` fields (dotted parent paths such as ``Product2.ERP_SKU__c``, or ``COUNT()``)
``FROM`` one object, ``WHERE`` with ``=  !=  <>  <  <=  >  >=``, ``[NOT] IN (…)``,
``LIKE``, ``AND``/``OR``/``NOT`` and parentheses, ``ORDER BY`` (``ASC``/``DESC``,
``NULLS FIRST``/``LAST``), ``LIMIT``, ``OFFSET``. Keywords and field names are
case-insensitive, and so are text comparisons, as in SOQL. A syntax error is
400 ``MALFORMED_QUERY``; an unknown field 400 ``INVALID_FIELD``; an unknown object
400 ``INVALID_TYPE`` (§3, §5).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.salesforce.emulator_rules import ApiError
from connectors.salesforce.emulator_schema import NUMBER_TYPES, FieldSpec, ObjectSpec

Row = dict[str, Any]
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d+)?"
    r"(?:Z|[+-]\d\d:\d\d))?)|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))"
)
_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by"}
_KEYWORDS |= {"asc", "desc", "nulls", "first", "last", "limit", "offset", "null"}
_KEYWORDS |= {"true", "false"}
#: "Quoted String Escape Sequences" (SOQL and SOSL Reference): any other backslash is an
#: error; ``\_`` and ``\%`` only in a LIKE pattern; ``\uXXXX`` a code point
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_ESCAPES |= {k.upper(): v for k, v in _ESCAPES.items()} | {'"': '"', "'": "'", "\\": "\\"}
#: "OFFSET" in the SOQL reference: the maximum offset is 2,000 rows
MAX_OFFSET = 2000


def malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_QUERY", message)


@dataclass
class Query:
    obj: str
    fields: list[str]
    count_only: bool = False
    where: Any = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # path, desc, nulls last
    limit: int | None = None
    offset: int = 0


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos, text = 0, text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise malformed(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
            kind = str(m.lastgroup)
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        kind, value = self.tokens[self.i]
        return word is None or (kind in {"word", "punct", "op"} and value.lower() == word)

    def take(self, word: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens) or (word is not None and not self.peek(word)):
            found = self.tokens[self.i][1] if self.i < len(self.tokens) else "end of query"
            expected = f"'{word.upper()}'" if word else "more"
            raise malformed(f"unexpected token: '{found}', expected {expected}")
        self.i += 1
        return self.tokens[self.i - 1]

    def name(self) -> str:
        kind, value = self.take()
        if kind != "word" or value.lower() in _KEYWORDS:
            raise malformed(f"unexpected token: '{value}', expected a field name")
        return value

    def parse(self) -> Query:
        self.take("select")
        fields, count_only = [], False
        if self.peek("count") and self.tokens[self.i + 1 : self.i + 2] == [("punct", "(")]:
            self.take(), self.take("("), self.take(")")
            count_only = True
        else:
            fields.append(self.name())
            while self.peek(","):
                self.take(",")
                fields.append(self.name())
        self.take("from")
        query = Query(self.name(), fields, count_only)
        if self.peek("where"):
            self.take("where")
            query.where = self.disjunction()
        if self.peek("order"):
            self.take("order"), self.take("by")
            query.order.append(self.order_item())
            while self.peek(","):
                self.take(",")
                query.order.append(self.order_item())
        for clause in ("limit", "offset"):
            if self.peek(clause):
                self.take(clause)
                kind, value = self.take()
                if kind != "num" or not value.isdigit():
                    raise malformed(f"{clause.upper()} needs a whole number, not '{value}'")
                setattr(query, clause, int(value))
        if query.offset > MAX_OFFSET:
            raise ApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )
        if self.i < len(self.tokens):
            raise malformed(f"unexpected token: '{self.tokens[self.i][1]}'")
        return query

    def order_item(self) -> tuple[str, bool, bool]:
        path, desc = self.name(), False
        if self.peek("asc") or self.peek("desc"):
            desc = self.take()[1].lower() == "desc"
        nulls_last = desc
        if self.peek("nulls"):
            self.take("nulls")
            nulls_last = self.take()[1].lower() == "last"
        return path, desc, nulls_last

    def disjunction(self) -> Any:
        parts = [self.conjunction()]
        while self.peek("or"):
            self.take("or")
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def conjunction(self) -> Any:
        parts = [self.factor()]
        while self.peek("and"):
            self.take("and")
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def factor(self) -> Any:
        if self.peek("not"):
            self.take("not")
            return ("not", self.factor())
        if self.peek("("):
            self.take("(")
            inner = self.disjunction()
            self.take(")")
            return inner
        path = self.name()
        negate = self.peek("not")
        if negate:
            self.take("not")
        if self.peek("in"):
            self.take("in"), self.take("(")
            values = [self.literal()]
            while self.peek(","):
                self.take(",")
                values.append(self.literal())
            self.take(")")
            return ("in", path, values, negate)
        if negate:
            raise malformed("NOT must be followed by IN here")
        if self.peek("like"):
            self.take("like")
            kind, value = self.take()
            if kind != "str":
                raise malformed(f"unexpected token: '{value}', expected a quoted pattern")
            return ("like", path, unescape(value[1:-1], like=True))
        kind, op = self.take()
        if kind != "op":
            raise malformed(f"unexpected token: '{op}', expected an operator")
        return ("cmp", path, "!=" if op == "<>" else op, self.literal())

    def literal(self) -> tuple[str, Any]:
        kind, value = self.take()
        if kind == "str":
            return "str", unescape(value[1:-1])
        if kind == "num":
            return "num", Decimal(value)
        if kind == "dt":
            # a date literal (2026-03-02) filters date fields, a datetime literal (with
            # T…Z) datetime fields: SOQL reference "Date Formats and Date Literals"
            try:
                return ("dt" if "T" in value else "date"), _moment(value)
            except ValueError:
                kind_name = "datetime" if "T" in value else "date"
                raise malformed(f"Invalid {kind_name}: {value}") from None
        lower = value.lower()
        if kind == "word" and lower in {"true", "false", "null"}:
            return ("null", None) if lower == "null" else ("bool", lower == "true")
        raise malformed(f"unexpected token: '{value}', expected a value")


def unescape(body: str, like: bool = False) -> str:
    """The text of a quoted literal (without its quotes); with ``like``, a regular
    expression for the LIKE pattern (``%`` any run, ``_`` one character, ``\\%`` and
    ``\\_`` themselves). An escape SOQL does not define is 400 MALFORMED_QUERY."""
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            wildcard = {"%": ".*", "_": "."}.get(char) if like else None
            out.append(wildcard or (re.escape(char) if like else char))
            i += 1
            continue
        after = body[i + 1 : i + 2]
        code = body[i + 2 : i + 6]
        if after in _ESCAPES:
            piece, i = _ESCAPES[after], i + 2
        elif after == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", code):
            piece, i = chr(int(code, 16)), i + 6
        elif like and after in {"%", "_"}:
            piece, i = after, i + 2
        else:
            raise malformed(
                f"Invalid string literal '{body}'. Illegal character sequence "
                f"'\\{after}' in string literal."
            )
        out.append(re.escape(piece) if like else piece)
    return "".join(out)


def parse(text: str) -> Query:
    return _Parser(text).parse()


def _moment(text: str) -> datetime:
    if "T" not in text:
        text += "T00:00:00Z"
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00"))


Resolver = Callable[[str], ObjectSpec | None]
Parent = Callable[[str, Any], Row | None]


class Runner:
    """Runs a parsed query on rows: ``objects`` finds an object by name, ``parent(obj, id)``
    fetches a referenced row."""

    def __init__(self, objects: Resolver, parent: Parent) -> None:
        self.objects, self.parent = objects, parent

    def path(self, obj: ObjectSpec, path: str) -> list[tuple[ObjectSpec, FieldSpec]]:
        """Each hop of a dotted path as (object, field); the last is the value field."""
        hops, parts = [], path.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            spec = obj.field(part) if last else obj.relationship(part)
            if spec is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{part}' on entity '{obj.name}'. If you are attempting "
                    "to use a custom field, be sure to append the '__c' after the custom "
                    "field name.",
                )
            hops.append((obj, spec))
            if not last:
                target = self.objects(str(spec.reference_to))
                assert target is not None
                obj = target
        return hops

    def value(self, row: Row | None, hops: list[tuple[ObjectSpec, FieldSpec]]) -> Any:
        for _obj, spec in hops[:-1]:
            ref = row.get(spec.name) if row else None
            row = self.parent(str(spec.reference_to), ref) if ref else None
        return row.get(hops[-1][1].name) if row else None

    def run(self, query: Query, rows: list[Row], version: str) -> list[Row]:
        obj = self.objects(query.obj)
        if obj is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{query.obj}' is not supported.")
        selected = [(p, self.path(obj, p)) for p in query.fields]
        test = self.condition(obj, query.where) if query.where is not None else None
        found = [r for r in rows if test is None or test(r)]
        for path, desc, nulls_last in reversed(query.order):
            hops = self.path(obj, path)
            with_value = [r for r in found if self.value(r, hops) is not None]
            without = [r for r in found if self.value(r, hops) is None]
            with_value.sort(key=functools.partial(self._order_key, hops), reverse=desc)
            found = with_value + without if nulls_last else without + with_value
        found = found[query.offset :]
        if query.limit is not None:
            found = found[: query.limit]
        return [self.project(obj, r, selected, version) for r in found]

    def _order_key(self, hops: list[tuple[ObjectSpec, FieldSpec]], row: Row) -> Any:
        value = self.value(row, hops)
        if hops[-1][1].type in ID_TYPES:  # case-sensitive base 62: "Z" < "a", as made
            return value
        return _sort_key(value)

    def project(self, obj: ObjectSpec, row: Row, selected: list[Any], version: str) -> Row:
        out: Row = {"attributes": _attributes(obj, row, version)}
        for _path, hops in selected:
            node, current = out, row
            for _, spec in hops[:-1]:
                target = self.objects(str(spec.reference_to))
                assert target is not None
                parent = self.parent(target.name, current.get(spec.name))
                key = str(spec.relationship_name)
                if parent is None:
                    node[key] = None
                    break
                if not isinstance(node.get(key), dict):
                    node[key] = {"attributes": _attributes(target, parent, version)}
                node, current = node[key], parent
            else:
                name = hops[-1][1].name
                node[name] = _json_value(hops[-1][1], current.get(name))
        return out

    def condition(self, obj: ObjectSpec, node: Any) -> Callable[[Row], bool]:
        kind = node[0]
        if kind in {"and", "or"}:
            parts = [self.condition(obj, n) for n in node[1]]
            combine = all if kind == "and" else any
            return lambda r: combine(p(r) for p in parts)
        if kind == "not":
            inner = self.condition(obj, node[1])
            return lambda r: not inner(r)
        hops = self.path(obj, node[1])
        spec = hops[-1][1]
        if kind == "in":
            keys = {_filter_key(spec, lit) for lit in node[2]}
            negate = node[3]
            return lambda r: (_key(spec, self.value(r, hops)) in keys) != negate
        if kind == "like":
            _filter_key(spec, ("str", ""))  # LIKE takes text fields only
            regex = re.compile(node[2], re.IGNORECASE | re.DOTALL)
            return lambda r: bool(regex.fullmatch(str(self.value(r, hops) or "")))
        op, want = node[2], _filter_key(spec, node[3])
        return lambda r: _compare(_key(spec, self.value(r, hops)), op, want)


def _attributes(obj: ObjectSpec, row: Row, version: str) -> Row:
    return {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}


def _key(spec: FieldSpec, value: Any) -> Any:
    """A stored value in comparable form (text case-insensitive, times as datetimes)."""
    if value is None:
        return None
    if spec.type in {"datetime", "date"}:
        return _moment(str(value))
    if isinstance(value, str):
        return value.lower()
    return value


def _filter_key(spec: FieldSpec, literal: tuple[str, Any]) -> Any:
    """A literal checked against the field's type, like SOQL's 'must be of type' error."""
    kind, value = literal
    expected = {
        "bool": {"boolean"},
        "num": NUMBER_TYPES | {"int"},
        "dt": {"datetime"},
        "date": {"date"},
    }.get(kind)
    if kind != "null" and expected is not None and spec.type not in expected:
        wrong = True
    else:
        wrong = kind == "str" and spec.type in NUMBER_TYPES | {"int", "boolean", "datetime", "date"}
    if wrong:
        kind_name = {"datetime": "dateTime"}.get(spec.type, spec.type)
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"value of filter criterion for field '{spec.name}' must be of type {kind_name} "
            "and should not be enclosed in quotes",
        )
    return value.lower() if isinstance(value, str) else value


def _compare(value: Any, op: str, want: Any) -> bool:
    if op == "=":
        return bool(value == want)
    if op == "!=":
        return bool(value != want)
    if value is None or want is None:
        return False
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return ops[op](value, want)


#: field types holding record ids, which are case-sensitive (``...0ZGAQ`` ≠ ``...0zGAQ``)
ID_TYPES = frozenset({"id", "reference"})


def _sort_key(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _json_value(spec: FieldSpec, value: Any) -> Any:
    """How the REST API writes a stored value: doubles as JSON numbers (§5 shows 42.0)."""
    if isinstance(value, Decimal):
        return int(value) if spec.type == "int" else float(value)
    return value


json_value = _json_value

"""What the emulated tenant refuses, record by record and call by call (reference §3, §5.3, §7).

Errors carry the Fxiaoke errorCode the real gateway answers with, or our best
inference where the reference says the code is undocumented (business errors,
marked [I]). The store (``emulator_store``) applies these rules on every write;
the HTTP layer (``emulator``) on the describe call.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.fxiaoke.emulator_describes import NUMBER_TYPES, READ_ONLY_SUFFIXES, FieldDescribe

#: parameter errors (bad value format, missing call parameter)
ERR_PARAM = 15002
#: business errors whose real code is undocumented (required field, duplicates, routing,
#: not found, read-only field, too many decimals) [I]
ERR_BUSINESS = 32000
#: paging out of range (offset > 10000, limit > 100, offset not a multiple of limit)
ERR_PAGING = 10013

MS_TYPES = frozenset({"date", "date_time"})


class ApiError(Exception):
    """A non-zero errorCode answer (the gateway still says HTTP 200)."""

    def __init__(self, code: int, message: str, description: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.description = description or message


def empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def places(number: Decimal) -> int:
    """Digits after the decimal point that carry a value ("3.50" has one)."""
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_writable(name: str, fd: FieldDescribe | None) -> None:
    """Companion fields of reads (``__r``, ``__l``, ``__o``, ``__v``, ``__relation_ids``)
    and quote or system fields must not be written (§5.3, §7)."""
    if name.endswith(READ_ONLY_SUFFIXES) or (fd is not None and fd.read_only):
        raise ApiError(ERR_BUSINESS, f"字段 {name} 为只读字段，不能写入", "只读字段")


def check_format(fd: FieldDescribe, value: Any) -> None:
    """A sent value in its field's format (§5.3): numbers as strings within the field's
    decimal places (§7), dates as epoch milliseconds."""
    name = fd.api_name
    if fd.type in NUMBER_TYPES:
        number = as_decimal(value) if isinstance(value, str) else None
        if number is None or not number.is_finite():
            raise ApiError(ERR_PARAM, f"field {name} must be a number sent as a string", "参数错误")
        if fd.decimal_places is not None and places(number) > fd.decimal_places:
            raise ApiError(
                ERR_BUSINESS,
                f"字段 {name} 最多 {fd.decimal_places} 位小数: {value}",
                f"{fd.label}小数位数超出",
            )
    if fd.type in MS_TYPES and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(ERR_PARAM, f"field {name} must be epoch milliseconds", "参数错误")


def check_required(fd: FieldDescribe, value: Any) -> None:
    """A required field left empty is a business error (§3 example, §7)."""
    if fd.required and empty(value):
        raise ApiError(ERR_BUSINESS, f"必填字段 {fd.api_name} 未填写", f"{fd.label}为必填项")


def describe_request(body: dict[str, Any]) -> str:
    """The apiName a describe call asks for (§5: ``apiName`` and ``includeDetail`` in
    ``data`` per Fxiaoke's manual and S1, at the top level per S3/S4; both required,
    includeDetail a boolean)."""
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    api_name = data.get("apiName", body.get("apiName"))
    if not isinstance(api_name, str) or not api_name:
        raise ApiError(ERR_PARAM, "apiName is required", "参数错误")
    if not isinstance(data.get("includeDetail", body.get("includeDetail")), bool):
        raise ApiError(ERR_PARAM, "includeDetail is required (a boolean)", "参数错误")
    return api_name


def search_info(data: dict[str, Any]) -> dict[str, Any]:
    """``data.search_query_info`` of a query call (§5.1), an object."""
    info = data.get("search_query_info") or {}
    if not isinstance(info, dict):
        raise ApiError(ERR_PARAM, "search_query_info must be an object", "参数错误")
    return info


class Window:
    """Sliding-window counter of admitted calls (per-path and token-endpoint limits, §4)."""

    def __init__(self, max_calls: int, period_s: float) -> None:
        self.max_calls = max_calls
        self.period_s = period_s
        self.calls: deque[float] = deque()

    def admit(self, now: float) -> bool:
        while self.calls and now - self.calls[0] >= self.period_s:
            self.calls.popleft()
        if len(self.calls) >= self.max_calls:
            return False
        self.calls.append(now)
        return True

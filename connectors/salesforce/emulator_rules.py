"""What the emulated org refuses, call by call and record by record (reference §3, §4, §7).

Two kinds of refusal: ``ApiError`` fails the whole request (an HTTP status and the
REST error array ``[{"message","errorCode","fields"?}]``, §3); ``FieldError`` fails
one record of a write (reported in its result as ``{"statusCode","message","fields"}``,
§4.2, or as a 400 on a single-record upsert). Messages whose exact text the reference
does not give are marked [I].
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from connectors.salesforce.emulator_schema import NUMBER_TYPES, TEXT_TYPES, FieldSpec

#: how extra decimals (beyond describe's scale) are taken: the reference (§7) says the API
#: stores them as sent; "round" (half-up) and "reject" are there to test a connector's own
#: rounding against a stricter org
DecimalsMode = Literal["store", "round", "reject"]

_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:?\d\d)?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


class ApiError(Exception):
    """A refused request: HTTP ``status`` and one REST error (§3)."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def body(self) -> list[dict[str, Any]]:
        error: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


class FieldError(Exception):
    """One record refused (§4.2 per-record ``errors[]``)."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields = code, message, fields or []

    def result_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def malformed(message: str, code: str = "JSON_PARSER_ERROR") -> ApiError:
    return ApiError(400, code, message)


def not_found() -> ApiError:
    """§4.1: the body the REST API answers for an unknown resource or ext-ID field."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def entity_is_deleted() -> ApiError:
    """A record in the recycle bin addressed by Id (DELETE again, PATCH): StatusCode
    ENTITY_IS_DELETED "You can't reference an object that has been deleted" (SOAP API
    StatusCode list, API 10.0+; message "entity is deleted"); the REST status 404 [I]."""
    return ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def unknown_field(obj: str, name: str) -> ApiError:
    """An unknown field in a write's JSON [message I]."""
    return ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}")


def wrong_type(spec: FieldSpec, value: Any) -> ApiError:
    """A value the JSON deserializer cannot turn into the field's type fails the request [I]."""
    kind = {str: "VALUE_STRING", bool: "VALUE_TRUE", dict: "START_OBJECT", list: "START_ARRAY"}
    token = kind.get(type(value), "VALUE_NUMBER")
    return malformed(
        f"Cannot deserialize instance of {spec.type} from {token} value {value!r} "
        f"or request may be missing a required field ({spec.name})"
    )


def convert(spec: FieldSpec, value: Any) -> Any:
    """A JSON value in the field's stored form (numbers as Decimal, parsed exactly); a
    value of the wrong JSON type fails the request. ``None`` stays ``None``."""
    if value is None:
        return None
    if spec.type in NUMBER_TYPES or spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, float, str)):
            raise wrong_type(spec, value)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise wrong_type(spec, value) from None
        if not number.is_finite() or (spec.type == "int" and number != number.to_integral()):
            raise wrong_type(spec, value)
        return number
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise wrong_type(spec, value)
        return value
    if not isinstance(value, str):
        raise wrong_type(spec, value)
    if spec.type == "datetime" and not _DATETIME.fullmatch(value):
        raise wrong_type(spec, value)
    if spec.type == "date" and not _DATE.fullmatch(value):
        raise wrong_type(spec, value)
    return value


def integer_digits(number: Decimal) -> int:
    digits, exponent = number.as_tuple().digits, number.as_tuple().exponent
    assert isinstance(exponent, int)
    whole = len(digits) + exponent
    return max(0, whole) if any(digits[: max(0, whole)]) else 0


def decimal_places(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_value(spec: FieldSpec, value: Any, decimals: DecimalsMode) -> Any:
    """The value as stored, or FieldError: integer digits beyond precision − scale are
    ``NUMBER_OUTSIDE_VALID_RANGE`` (§7); extra decimals per ``decimals``; text longer
    than ``length`` is ``STRING_TOO_LONG`` (§3)."""
    if value is None:
        return None
    if spec.type in NUMBER_TYPES and spec.precision:
        if decimal_places(value) > spec.scale and decimals != "store":
            if decimals == "reject":
                raise FieldError(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{spec.name}: more than {spec.scale} decimal places: {value}",
                    [spec.name],
                )
            # rounded first: 9…9.995 rounds up to one integer digit more and overflows
            value = value.quantize(Decimal(1).scaleb(-spec.scale), rounding=ROUND_HALF_UP)
        if integer_digits(value) > spec.precision - spec.scale:
            raise FieldError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{spec.name}: value outside of valid range on numeric field: {value}",
                [spec.name],
            )
    if spec.type in TEXT_TYPES and spec.length and len(value) > spec.length:
        raise FieldError(
            "STRING_TOO_LONG",
            f"{spec.name}: data value too large: {value[:40]} (max length={spec.length})",
            [spec.name],
        )
    return value


def required_missing(names: list[str]) -> FieldError:
    """§3: ``REQUIRED_FIELD_MISSING`` naming the fields (S17's sample)."""
    return FieldError(
        "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]", names
    )


def not_writable(names: list[str]) -> FieldError:
    return FieldError(
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: {', '.join(names)}. Please check the security "
        "settings of this field and verify that it is read/write for your profile or "
        "permission set.",
        names,
    )


def index_key(spec: FieldSpec, value: Any) -> Any:
    """``value`` as an External ID match or a unique index compares it: text is folded to
    lower case only where ``spec.case_insensitive_match`` says so."""
    if isinstance(value, str) and spec.case_insensitive_match:
        return value.lower()
    return value

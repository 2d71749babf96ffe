"""``check-config --connect`` for Salesforce: what the org's describes say of the config.

Every problem is collected (a ConfigError lists them all): an object or field that does
not exist, an upsert key that is no External ID (reference §4.1, §6), a parent lookup
whose key field the parent lacks, and a required field stocksync would leave empty (every
create would fail ``REQUIRED_FIELD_MISSING``, reference §3).
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.salesforce.mapping import Describe
from connectors.salesforce.settings import SalesforceSettings
from sync.errors import ConfigProblem, PermanentError

Describer = Callable[[str], Describe]


def _problem(setting: str, message: str) -> ConfigProblem:
    return ConfigProblem(f"crm.{setting}", message)


def _describe(
    describe: Describer, setting: str, sobject: str, out: list[ConfigProblem]
) -> Describe | None:
    try:
        return describe(sobject)
    except PermanentError as exc:
        out.append(_problem(setting, f"object {sobject!r} cannot be described: {exc}"))
        return None


def _parent(
    s: SalesforceSettings,
    stock: Describe,
    describe: Describer,
    relationship: tuple[str, str],
    key: tuple[str, str],
    out: list[ConfigProblem],
) -> str | None:
    """Check one parent lookup; the name of its lookup field (filled through the relationship)."""
    rel_setting, rel = relationship
    key_setting, key_field = key
    lookup = stock.lookup_of(rel)
    if lookup is None:
        out.append(_problem(rel_setting, f"{stock.name} has no relationship {rel!r}"))
        return None
    targets = lookup.get("referenceTo") or []
    if targets:
        parent = _describe(describe, rel_setting, str(targets[0]), out)
        if parent is not None and not parent.has(key_field):
            out.append(_problem(key_setting, f"{parent.name} has no field {key_field!r}"))
        elif parent is not None and not parent.is_upsert_key(key_field):
            out.append(
                _problem(key_setting, f"{parent.name}.{key_field} is not an External ID field")
            )
    return str(lookup.get("name"))


def _stock(s: SalesforceSettings, describe: Describer, out: list[ConfigProblem]) -> None:
    stock = _describe(describe, "stock_object", s.stock_object, out)
    if stock is None:
        return
    written = {field for _, field in s.stock_fields}
    out.extend(
        _problem(setting, f"{stock.name} has no field {field!r}")
        for setting, field in s.stock_fields
        if not stock.has(field)
    )
    if stock.has(s.stock_key_field) and not stock.is_upsert_key(s.stock_key_field):
        out.append(
            _problem("stock_key_field", f"{stock.name}.{s.stock_key_field} is not an External ID")
        )
    for relationship, key in (
        (
            ("stock_product_relationship", s.stock_product_relationship),
            ("product_key_field", s.product_key_field),
        ),
        (
            ("stock_location_relationship", s.stock_location_relationship),
            ("location_key_field", s.location_key_field),
        ),
    ):
        lookup = _parent(s, stock, describe, relationship, key, out)
        if lookup:
            written.add(lookup)
    out.extend(_unfilled("stock_object", stock, written))


def _movements(s: SalesforceSettings, describe: Describer, out: list[ConfigProblem]) -> None:
    mirror = _describe(describe, "movement_object", s.movement_object, out)
    if mirror is None:
        return
    out.extend(
        _problem(setting, f"{mirror.name} has no field {field!r}")
        for setting, field in s.movement_fields
        if not mirror.has(field)
    )
    if mirror.has(s.movement_key_field) and not mirror.is_upsert_key(s.movement_key_field):
        out.append(
            _problem(
                "movement_key_field", f"{mirror.name}.{s.movement_key_field} is not an External ID"
            )
        )
    out.extend(_unfilled("movement_object", mirror, {f for _, f in s.movement_fields}))


def _unfilled(setting: str, describe: Describe, written: set[str]) -> list[ConfigProblem]:
    return [
        _problem(setting, f"{describe.name} requires field {name!r}, which stocksync does not fill")
        for name in describe.required()
        if name not in written
    ]


def problems(s: SalesforceSettings, describe: Describer) -> list[ConfigProblem]:
    """Every problem the org's describes show in the configuration (none: it will work)."""
    found: list[ConfigProblem] = []
    _stock(s, describe, found)
    if s.verify_movement_object:
        _movements(s, describe, found)
    return found

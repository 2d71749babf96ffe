"""Salesforce as a CrmSink and a batch sink: stock records upserted by External ID.

Levels go to the configured object (``ProductItem`` by default, or a custom object), 200
records per sObject Collections call, ``allOrNone`` false (reference §4.2); each
record's result settles its own outbox row (``sync.push_batch``). The single-record
operations of ``CrmSink`` exist too: reconcile and the contract suite use them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from connectors.salesforce.checks import problems
from connectors.salesforce.client import SalesforceClient, error_for
from connectors.salesforce.mapping import (
    Describe,
    at_places,
    level_fields,
    level_record,
    level_soql,
    movement_record,
    parents,
    parse_level,
    soql_string,
    stock_key_value,
)
from connectors.salesforce.settings import SalesforceSettings
from sync.errors import ConfigError, PermanentError, StockSyncError
from sync.model import CrmLevel, LevelValue, Movement, StockKey
from sync.ports import ApiUsage, BatchOutcome, ConnectorContext

__all__ = ["SalesforceSettings", "SalesforceSink", "build"]

Json = dict[str, Any]


class SalesforceSink:
    """CrmSink, BatchLevelSink and BatchMovementSink over the Salesforce REST API."""

    name = "salesforce"

    def __init__(self, settings: SalesforceSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.client = SalesforceClient(settings, context)
        self.batch_size = settings.batch_size
        self._now = context.now
        self._describes: dict[str, tuple[float, Describe]] = {}
        self._lock = threading.Lock()
        #: External ID values of stock records known to exist (their parents are not sent)
        self._existing: set[str] = set()

    def __repr__(self) -> str:
        s = self.settings
        return f"SalesforceSink(login_url={s.login_url!r}, client_id={s.client_id!r})"

    # ------------------------------------------------------------ describes
    def describe(self, sobject: str) -> Describe:
        """The object's describe, cached ``describe_ttl_s`` (never one call per push)."""
        now = self._now().timestamp()
        with self._lock:
            cached = self._describes.get(sobject)
        if cached and now - cached[0] < self.settings.describe_ttl_s:
            return cached[1]
        found = Describe.of(self.client.describe(sobject))
        with self._lock:
            self._describes[sobject] = (now, found)
        return found

    def _places(self, sobject: str, field: str) -> int | None:
        return self.describe(sobject).places(field, self.settings.decimal_places)

    # ------------------------------------------------------------ levels
    def shown_level(self, value: LevelValue) -> LevelValue:
        """``value`` at the scale of the quantity (and available) field, half-even."""
        s = self.settings
        real = self._places(s.stock_object, s.stock_quantity_field)
        available = (
            self._places(s.stock_object, s.stock_available_field)
            if s.stock_available_field
            else real
        )
        return LevelValue(at_places(value.real, real), at_places(value.available, available))

    def shown_reserved(self, value: LevelValue) -> Decimal:
        """The reserved figure written for ``value``: real − available as shown, at the
        reserved field's scale."""
        s = self.settings
        reserved = self.shown_level(value).reserved
        if not s.stock_reserved_field:
            return reserved
        return at_places(reserved, self._places(s.stock_object, s.stock_reserved_field))

    def _record(self, key: StockKey, value: LevelValue, *, with_parents: bool = True) -> Json:
        s = self.settings
        record = level_record(s, key, self.shown_level(value), self.shown_reserved(value))
        if not with_parents:
            del record[s.stock_product_relationship], record[s.stock_location_relationship]
        return record

    def upsert_levels(self, items: Sequence[tuple[StockKey, LevelValue]]) -> list[BatchOutcome]:
        """Upsert each key's record by its External ID, one collections call (reference §4.2).

        The parents go only into records not known to exist: ProductItem's Product2Id and
        LocationId are create-only (§8.1), and whether an update that names the same parent
        is refused is not documented. A record refused either way — parents sent to one
        that exists (INVALID_FIELD_FOR_INSERT_UPDATE), none sent to one that does not
        (REQUIRED_FIELD_MISSING) — is sent once more the other way, in one more call.
        """
        s = self.settings
        known = [_safe_key(s, key) in self._existing for key, _ in items]
        outcomes = self._upsert_levels(items, [not k for k in known])
        again = [
            i for i, o in enumerate(outcomes) if self._parents_wrong(o, with_parents=not known[i])
        ]
        if again:
            redo = self._upsert_levels([items[i] for i in again], [known[i] for i in again])
            for i, outcome in zip(again, redo, strict=True):
                outcomes[i] = outcome
        for i, ((key, _), outcome) in enumerate(zip(items, outcomes, strict=True)):
            if outcome.crm_id is not None:
                self._existing.add(stock_key_value(s, key))
            elif i in again and known[i]:  # deleted in the org, and not created again
                self._existing.discard(stock_key_value(s, key))
        return outcomes

    def _upsert_levels(
        self, items: Sequence[tuple[StockKey, LevelValue]], with_parents: Sequence[bool]
    ) -> list[BatchOutcome]:
        s = self.settings
        return self._upsert(
            s.stock_object,
            s.stock_key_field,
            list(zip(items, with_parents, strict=True)),
            lambda pair: self._record(*pair[0], with_parents=pair[1]),
            lambda pair: parents(s, pair[0][0]),
        )

    def _parents_wrong(self, outcome: BatchOutcome, *, with_parents: bool) -> bool:
        """Whether ``outcome`` refused the record for naming its parents (sent to a record
        that exists) or for lacking them (sent to one that does not)."""
        error = outcome.error
        if error is None:
            return False
        code = error.context.get("error_code")
        wanted = "INVALID_FIELD_FOR_INSERT_UPDATE" if with_parents else "REQUIRED_FIELD_MISSING"
        return code == wanted and any(name in str(error) for name in self._lookup_names())

    def _lookup_names(self) -> list[str]:
        """The lookup fields the parent relationships fill (Product2Id, LocationId)."""
        s = self.settings
        stock = self.describe(s.stock_object)
        found = (
            stock.lookup_of(r)
            for r in (s.stock_product_relationship, s.stock_location_relationship)
        )
        return [str(f["name"]) for f in found if f]

    def _upsert(
        self,
        sobject: str,
        key_field: str,
        items: Sequence[Any],
        record: Callable[[Any], Json],
        named: Callable[[Any], dict[str, tuple[str, str]]],
    ) -> list[BatchOutcome]:
        """One call for the items that make a record; an item that cannot (a code holding
        the key separator) gets its error without being sent."""
        outcomes: list[BatchOutcome | None] = []
        records: list[Json] = []
        for item in items:
            try:
                records.append(record(item))
                outcomes.append(None)
            except PermanentError as exc:
                outcomes.append(BatchOutcome(error=exc))
        results = iter(self.client.upsert(sobject, key_field, records) if records else [])
        what = f"Salesforce upsert {sobject}"
        return [
            outcome or _outcome(next(results), what, named(item))
            for item, outcome in zip(items, outcomes, strict=True)
        ]

    def find_level(self, key: StockKey) -> str | None:
        """The record holding ``key`` in its External ID field."""
        s = self.settings
        where = f"{s.stock_key_field} = {soql_string(stock_key_value(s, key))}"
        for row in self.client.query_all(level_soql(s, where, limit=1)):
            return str(row["Id"])
        return None

    def create_level(self, key: StockKey, value: LevelValue) -> str:
        """An upsert of one record (Salesforce creates it, or updates the one with its key)."""
        (outcome,) = self.upsert_levels([(key, value)])
        return _written(outcome)

    def update_level(self, crm_id: str, key: StockKey, value: LevelValue) -> None:
        """Write the numbers into ``key``'s record (found by its External ID, which names
        one record); RecordGoneError when it is gone. Never creates."""
        s = self.settings
        fields = level_fields(s, self.shown_level(value), self.shown_reserved(value))
        self.client.update(s.stock_object, s.stock_key_field, stock_key_value(s, key), fields)

    def invalidate_level(self, crm_id: str, key: StockKey) -> None:
        """Delete a duplicate record (to the org's recycle bin); idempotent: a record
        already gone (404 ENTITY_IS_DELETED or NOT_FOUND) is no error.

        Where the deleted record held ``key`` in its External ID field, the oldest record
        left for the key's product and location (one made by hand, without the key) is
        given it, so that ``find_level`` and the next upsert by External ID land on the
        record kept rather than create a new duplicate. Run again after a failure, the
        hand-over is repeated only if nothing holds the key yet.
        """
        s = self.settings
        self.client.delete(s.stock_object, crm_id)
        if self.find_level(key) is not None:
            return
        self._existing.discard(stock_key_value(s, key))
        kept = next((lv.crm_id for lv in self.read_levels_of(key) if lv.crm_id != crm_id), None)
        if kept is not None:
            self.client.update_by_id(
                s.stock_object, kept, {s.stock_key_field: stock_key_value(s, key)}
            )
            self._existing.add(stock_key_value(s, key))

    def read_levels_of(self, key: StockKey) -> Iterator[CrmLevel]:
        """The stock records of ``key``'s product and location, oldest first."""
        s = self.settings
        where = (
            f"{s.stock_product_relationship}.{s.product_key_field} = {soql_string(key.sku)} "
            f"AND {s.stock_location_relationship}.{s.location_key_field} = "
            f"{soql_string(key.warehouse)}"
        )
        for row in self.client.query_all(level_soql(s, where)):
            yield parse_level(s, row)

    def prepare_levels(self, keys: Sequence[StockKey]) -> None:
        """Nothing to resolve: parents are named by their External IDs in each record."""

    def read_levels(self) -> Iterator[CrmLevel]:
        """Every stock record, oldest (lowest Id) first, duplicates included (SOQL, paged)."""
        for row in self.client.query_all(level_soql(self.settings)):
            yield parse_level(self.settings, row)

    # ------------------------------------------------------------ movements
    def _movement_record(self, movement: Movement) -> Json:
        s = self.settings
        places = self._places(s.movement_object, s.movement_qty_field)
        return movement_record(s, movement, places)

    def upsert_movements(self, movements: Sequence[Movement]) -> list[BatchOutcome]:
        s = self.settings
        return self._upsert(
            s.movement_object, s.movement_key_field, movements, self._movement_record, _no_parents
        )

    def find_movement(self, movement_key: str) -> str | None:
        s = self.settings
        soql = (
            f"SELECT Id FROM {s.movement_object} WHERE {s.movement_key_field} = "
            f"{soql_string(movement_key)} ORDER BY Id LIMIT 1"
        )
        for row in self.client.query_all(soql):
            return str(row["Id"])
        return None

    def create_movement(self, movement: Movement) -> str:
        (outcome,) = self.upsert_movements([movement])
        return _written(outcome)

    def update_movement(self, crm_id: str, movement: Movement) -> None:
        s = self.settings
        fields = self._movement_record(movement)
        fields.pop(s.movement_key_field)
        self.client.update(s.movement_object, s.movement_key_field, movement.key, fields)

    # ------------------------------------------------------------ lifecycle
    def api_usage(self) -> ApiUsage | None:
        """The org's daily API usage as the last answer's ``Sforce-Limit-Info`` said."""
        return self.client.api_usage()

    def check(self) -> str:
        """Describe the configured objects; ConfigError listing every missing field, key
        field that is no External ID, and required field stocksync leaves empty."""
        found = problems(self.settings, self.describe)
        if found:
            raise ConfigError(found)
        s = self.settings
        next(self.client.query_all(level_soql(s, limit=1)), None)
        usage = self.client.api_usage()
        used = f"; API usage {usage.used} of {usage.limit} today" if usage else ""
        session = self.client.session()
        objects = s.stock_object + (f", {s.movement_object}" if s.verify_movement_object else "")
        return f"salesforce {session.instance_url} API v{s.api_version}: {objects} verified{used}"

    def close(self) -> None:
        self.client.close()


def _safe_key(s: SalesforceSettings, key: StockKey) -> str | None:
    try:
        return stock_key_value(s, key)
    except PermanentError:
        return None


def _no_parents(_: Movement) -> dict[str, tuple[str, str]]:
    return {}


def _outcome(result: Json, what: str, named: dict[str, tuple[str, str]]) -> BatchOutcome:
    """One collections result as a BatchOutcome (its first error classed by ``error_for``)."""
    if result.get("success") and result.get("id"):
        return BatchOutcome(str(result["id"]), bool(result.get("created")))
    errors = result.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    fields = first.get("fields") or []
    error = error_for(
        str(first.get("statusCode") or ""),
        str(first.get("message") or "no error given") + (f" (fields: {fields})" if fields else ""),
        what=what,
        parents=named,
    )
    return BatchOutcome(error=error)


def _written(outcome: BatchOutcome) -> str:
    if outcome.error is not None:
        raise outcome.error
    if outcome.crm_id is None:
        raise StockSyncError("Salesforce upsert: a record written without an id")
    return outcome.crm_id


def build(settings: SalesforceSettings, context: ConnectorContext) -> SalesforceSink:
    """Registry factory (``connectors.salesforce.sink:build``)."""
    return SalesforceSink(settings, context)

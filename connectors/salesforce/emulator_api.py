"""The REST resources under ``/services/data/vXX.X/`` (reference §4–§6, §9, §11.4–7).

``RestApi.handle`` maps (method, path below the version, query, headers, body) to
(HTTP status, JSON body); authentication, the daily limit and faults are the HTTP
layer's (``emulator``). Writes go through ``Store.upsert``; queries through
``emulator_soql``; describe answers come from ``emulator_schema``.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from typing import Any, Literal

from connectors.salesforce.emulator_faults import LOCK_MESSAGE
from connectors.salesforce.emulator_rules import (
    ApiError,
    FieldError,
    convert,
    index_key,
    malformed,
    not_found,
)
from connectors.salesforce.emulator_schema import FieldSpec, ObjectSpec
from connectors.salesforce.emulator_soql import Runner, json_value, parse
from connectors.salesforce.emulator_store import Journal, Row, Store

#: §4.2: at most 200 records per sObject Collections call
MAX_COLLECTION = 200
#: §5: up to 2,000 records per query batch; Sforce-Query-Options batchSize 200–2,000
MAX_QUERY_BATCH, MIN_QUERY_BATCH = 2000, 200
#: §1: sObject Collections upsert and ``created`` need v46.0+
MIN_UPSERT_COLLECTIONS = 46.0
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}
#: §4.2 [I]: two records of one batch with the same External ID. The platform answers
#: DUPLICATE_VALUE "Duplicate external id specified: <value>" naming the key field
#: (salesforce.stackexchange.com q/104048, q/296121: "First exception on row 0", so the
#: first occurrence fails too: "all"); "repeated" fails only the later ones
DuplicateMode = Literal["all", "repeated"]
#: §3: an unknown field in a write is "per-record statusCode or 400": both, by switch
UnknownFieldMode = Literal["request", "record"]
#: §4.1: a single-record upsert's body holds "the fields (not the ext-ID field, not Id)";
#: REST API guides v53–v55 add "Do not specify Id or an external ID field in the request
#: body or an error is generated", later guides drop the sentence: "refuse" (the
#: reference's, default) answers 400 INVALID_FIELD [code I], "accept" lets the URL's value win
KeyInBodyMode = Literal["refuse", "accept"]
Answer = tuple[int, Any]


class RestApi:
    """The data resources of one org (``store``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.query_page_size = MAX_QUERY_BATCH
        self.duplicate_keys: DuplicateMode = "all"
        self.unknown_field: UnknownFieldMode = "request"
        self.key_in_body: KeyInBodyMode = "refuse"
        #: a whole-call fault for the next write (set by the HTTP layer): "unable_to_lock_row"
        self.call_fault: str | None = None
        self._cursors: OrderedDict[str, list[Row]] = OrderedDict()
        self._locators = itertools.count(1)
        self.runner = Runner(store.find_object, self._parent)

    def _parent(self, obj: str, rid: str) -> Row | None:
        return self.store.get(obj, rid) if rid else None

    def handle(
        self,
        method: str,
        version: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: Any,
    ) -> Answer:
        parts = [p for p in path.split("/") if p] if path else []
        head = parts[0] if parts else ""
        if not parts:
            return 200, self._resources(version)
        if head == "limits" and len(parts) == 1:
            return 200, {}  # filled in by the HTTP layer, which owns the counter
        if head in {"query", "queryAll"}:
            return self._query(version, parts[1:], params, headers, deleted=head == "queryAll")
        if head == "sobjects":
            return self._sobjects(method, version, path, parts[1:], params, body)
        if parts[:2] == ["composite", "sobjects"] and len(parts) == 4:
            if method != "PATCH":
                raise ApiError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{method}' not allowed. Allowed are PATCH",
                )
            if float(version) < MIN_UPSERT_COLLECTIONS:
                raise not_found()
            return 200, self.upsert_collection(parts[2], parts[3], body)
        raise not_found()

    def _resources(self, version: str) -> Row:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        return {name: f"{base}/{name}" for name in names}

    # ------------------------------------------------------------ sobjects
    def _sobjects(
        self,
        method: str,
        version: str,
        path: str,
        parts: list[str],
        params: dict[str, str],
        body: Any,
    ) -> Answer:
        if not parts:
            objects = [o.summary(version) for o in self.store.objects.values()]
            return 200, {"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION, "sobjects": objects}
        obj = self.store.obj(parts[0])
        if len(parts) == 1 and method == "GET":
            return 200, {"objectDescribe": obj.summary(version), "recentItems": []}
        if len(parts) == 2 and parts[1] == "describe" and method == "GET":
            return 200, obj.describe(version)
        if len(parts) == 2 and method == "GET":
            row = self.store.get(obj.name, parts[1])
            if row is None:
                raise not_found()
            return 200, self.full_record(obj, row, version)
        if len(parts) == 2 and method in {"DELETE", "PATCH"}:
            return self._by_id(method, obj, parts[1], body)
        if len(parts) >= 3:
            # the value is the rest of the path (already URL-decoded), slashes and all
            value = path.strip("/").split("/", 3)[3]
            return self._by_external_id(method, version, obj, parts[1], value, params, body)
        raise not_found()

    def _by_id(self, method: str, obj: ObjectSpec, rid: str, body: Any) -> Answer:
        """DELETE (to the recycle bin) or PATCH (update, never create) of the record ``rid``:
        204 No Content; 404 NOT_FOUND for an unknown Id, ENTITY_IS_DELETED for one in
        the recycle bin (REST API "Delete a Record", "Update a Record")."""
        if method == "PATCH" and not isinstance(body, dict):
            raise malformed("Expected a JSON object as the request body")
        if method == "PATCH" and any(k.lower() == "id" for k in body):
            raise ApiError(400, "INVALID_FIELD", "Id not allowed in the body of an update", ["Id"])
        self.store.live(obj, rid)
        if self.call_fault == "unable_to_lock_row":
            raise ApiError(400, "UNABLE_TO_LOCK_ROW", LOCK_MESSAGE, [])
        if method == "DELETE":
            self.store.delete(obj, rid)
            return 204, None
        try:
            self.store.update(obj, rid, body)
        except FieldError as exc:
            raise ApiError(400, exc.code, exc.message, exc.fields) from None
        return 204, None

    def full_record(self, obj: ObjectSpec, row: Row, version: str) -> Row:
        out: Row = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}",
            }
        }
        for spec in obj.fields.values():
            out[spec.name] = json_value(spec, row.get(spec.name))
        return out

    def _by_external_id(
        self,
        method: str,
        version: str,
        obj: ObjectSpec,
        field: str,
        value: str,
        params: dict[str, str],
        body: Any,
    ) -> Answer:
        key = self.store.key_field(obj, field)
        if key is None:
            raise not_found()
        found = self.store.matches(obj, key, value)
        urls = [f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in found]
        if len(found) > 1:
            return 300, urls
        if method == "GET":
            if not found:
                raise not_found()
            return 200, self.full_record(obj, self.store.rows[obj.name][found[0]], version)
        if method != "PATCH":
            raise ApiError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH",
            )
        self._check_single_body(key, body)
        if params.get("updateOnly", "").lower() == "true" and not found:
            raise not_found()
        if self.call_fault == "unable_to_lock_row":
            raise ApiError(400, "UNABLE_TO_LOCK_ROW", LOCK_MESSAGE, [])
        try:
            done = self.store.upsert(obj, key, value, body)
        except FieldError as exc:
            raise ApiError(400, exc.code, exc.message, exc.fields) from None
        if float(version) < MIN_UPSERT_COLLECTIONS:
            return (
                (201, {"id": done.id, "errors": [], "success": True})
                if done.created
                else (204, None)
            )
        answer = {"id": done.id, "errors": [], "success": True, "created": done.created}
        return (201 if done.created else 200), answer

    def _check_single_body(self, key: FieldSpec, body: Any) -> None:
        """§4.1: a JSON object of fields, neither ``Id`` nor (``key_in_body``) the key."""
        if not isinstance(body, dict):
            raise malformed("Expected a JSON object as the request body")
        if "Id" in body or "id" in body:
            raise ApiError(
                400, "INVALID_FIELD", "Id not allowed in an upsert by external ID", ["Id"]
            )
        if self.key_in_body == "refuse" and any(k.lower() == key.name.lower() for k in body):
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"{key.name}: the External ID field is given in the URL, not in the body",
                [key.name],
            )

    # ------------------------------------------------------------ collections
    def upsert_collection(self, obj_name: str, field: str, body: Any) -> list[Row]:
        """§4.2: ordered UpsertResults; a malformed request is a 400 and changes nothing."""
        obj = self.store.obj(obj_name)
        key = self.store.key_field(obj, field)
        if key is None:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {field} does not match an External ID, Salesforce Id, "
                f"or indexed field for {obj.name}",
            )
        records, all_or_none = self._collection_body(body, obj)
        keys = [
            next((v for k, v in r.items() if k.lower() == key.name.lower()), None) for r in records
        ]
        duplicates = self._duplicates(key, keys)
        journal, results = Journal(), []
        for i, record in enumerate(records):
            results.append(self._one(obj, key, keys[i], record, journal, i in duplicates))
        if all_or_none and not all(r["success"] for r in results):
            self.store.undo(journal)
            results = [
                r if not r["success"] else {"success": False, "errors": [dict(ROLLED_BACK)]}
                for r in results
            ]
        return results

    def _one(
        self, obj: ObjectSpec, key: Any, value: Any, record: Row, journal: Journal, duplicate: bool
    ) -> Row:
        try:
            if duplicate:
                raise FieldError(
                    "DUPLICATE_VALUE", f"Duplicate external id specified: {value}", [key.name]
                )
            if self.call_fault == "unable_to_lock_row":
                raise FieldError("UNABLE_TO_LOCK_ROW", LOCK_MESSAGE, [])
            fields = {k: v for k, v in record.items() if k.lower() != key.name.lower()}
            done = self.store.upsert(obj, key, value, fields, journal)
        except FieldError as exc:
            return {"success": False, "errors": [exc.result_error()]}
        except ApiError as exc:
            if exc.code == "INVALID_FIELD" and self.unknown_field == "record":
                return {
                    "success": False,
                    "errors": [{"statusCode": exc.code, "message": exc.message, "fields": []}],
                }
            self.store.undo(journal)
            raise
        return {"id": done.id, "success": True, "errors": [], "created": done.created}

    def _collection_body(self, body: Any, obj: ObjectSpec) -> tuple[list[Row], bool]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise malformed("Expected an object with a 'records' array")
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise malformed("allOrNone must be a boolean")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than "
                f"{MAX_COLLECTION} records into this call",
            )
        for record in records:
            if not isinstance(record, dict):
                raise malformed("Each record must be a JSON object")
            attributes = record.get("attributes")
            kind = attributes.get("type") if isinstance(attributes, dict) else None
            if not kind:
                raise ApiError(400, "INVALID_FIELD", "No type specified in the record's attributes")
            if str(kind).lower() != obj.name.lower():
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"Record type {kind} does not match the URI's type {obj.name}",
                )
            if any(k.lower() == "id" for k in record):
                raise ApiError(
                    400, "INVALID_FIELD", "Id not allowed in an upsert by external ID", ["Id"]
                )
        return records, all_or_none

    def _duplicates(self, key: FieldSpec, keys: list[Any]) -> set[int]:
        """Positions of records whose External ID another record of the batch repeats, as
        the key's match compares them (case folded only where the field matches so)."""
        seen: dict[Any, list[int]] = {}
        for i, value in enumerate(keys):
            if value in (None, ""):
                continue
            try:
                compared = index_key(key, convert(key, value))
            except ApiError:
                compared = value  # the record fails on its own when it is written
            seen.setdefault(compared, []).append(i)
        out: set[int] = set()
        for positions in seen.values():
            if len(positions) > 1:
                out.update(positions if self.duplicate_keys == "all" else positions[1:])
        return out

    # ------------------------------------------------------------ query
    def _query(
        self,
        version: str,
        rest: list[str],
        params: dict[str, str],
        headers: dict[str, str],
        *,
        deleted: bool = False,
    ) -> Answer:
        """§5: SOQL over the live rows; ``queryAll`` adds the recycle bin's."""
        if rest:
            locator, _, offset = rest[0].rpartition("-")
            rows = self._cursors.get(locator)
            if rows is None or not offset.isdigit():
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return 200, self._page(version, locator, rows, int(offset), headers)
        text = params.get("q")
        if not text:
            raise malformed("A query string has to be specified", "MALFORMED_QUERY")
        query = parse(text)
        obj = self.store.find_object(query.obj)
        rows = list(self.store.rows[obj.name].values()) if obj else []
        if obj and deleted:
            rows += self.store.deleted.get(obj.name, {}).values()
        found = self.runner.run(query, rows, version)
        if query.count_only:
            return 200, {"totalSize": len(found), "done": True, "records": []}
        locator = f"01g5g00000EMU{next(self._locators):05d}"
        self._cursors[locator] = found
        while len(self._cursors) > 50:  # cursors expire; the oldest go first
            self._cursors.popitem(last=False)
        return 200, self._page(version, locator, found, 0, headers)

    def _page(
        self, version: str, locator: str, rows: list[Row], offset: int, headers: dict[str, str]
    ) -> Row:
        size = self.query_page_size
        asked = re.search(r"batchSize=(\d+)", headers.get("sforce-query-options", ""))
        if asked:
            size = min(size, max(MIN_QUERY_BATCH, min(MAX_QUERY_BATCH, int(asked.group(1)))))
        end = offset + size
        page: Row = {"totalSize": len(rows), "done": end >= len(rows)}
        if end < len(rows):
            page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
        else:
            self._cursors.pop(locator, None)
        page["records"] = rows[offset:end]
        return page


def route_of(method: str, rest: str) -> str:
    parts = [p for p in rest.split("/") if p]
    head = parts[0] if parts else ""
    if head in {"query", "queryAll"}:
        return "query"
    if parts[:2] == ["composite", "sobjects"]:
        return "collections"
    if head == "sobjects" and parts[-1:] == ["describe"]:
        return "describe"
    if head == "sobjects" and len(parts) >= 4 and method == "PATCH":
        return "upsert"
    if head == "sobjects" and len(parts) == 3 and method == "DELETE":
        return "delete"
    if head == "sobjects" and len(parts) == 3 and method == "PATCH":
        return "update"
    return head or "resources"

"""The K/3 Cloud ErpSource: factory and the read paths (settings in ``settings``).

Documents are pulled by the dates a change stamps (FModifyDate, and the status
dates FApproveDate and FCancelDate, OR-ed; every status, so un-approvals and
cancellations arrive as inactive lines), in keyset pages of whole documents.
Deletions are found by the window rescan on FDate; on hand and reserved come
from STK_Inventory (``stock_reads``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.k3cloud import stock_reads
from connectors.k3cloud.client import K3CloudClient, MissingFieldError, sql_quote
from connectors.k3cloud.localtime import earliest_local_reading
from connectors.k3cloud.mapping import RowDecoder, parse_erp_datetime, row_as_dict
from connectors.k3cloud.settings import K3CloudSettings
from connectors.k3cloud.stock_reads import INVENTORY_FORM, SCAN_PAGE_SIZE
from connectors.k3cloud.streams import (
    ERP_DATETIME_FORMAT,
    SOURCE,
    STOCK_ORG,
    STREAMS,
    StreamDef,
    configured,
    converting,
    field_keys,
    key_field_keys,
    keys_for,
)
from connectors.k3cloud.units import UnitTable
from sync.errors import ConfigError, ConfigProblem, RecordError
from sync.model import Cursor, Movement, OnHand, Page, RejectedRecord, Reserved
from sync.ports import ConnectorContext


def build(settings: K3CloudSettings, context: ConnectorContext) -> K3CloudSource:
    """Registry factory: a source over a fresh client (no network until the first call)."""
    client = K3CloudClient(
        server_url=settings.server_url,
        acct_id=settings.acct_id,
        username=settings.username,
        app_id=settings.app_id,
        app_secret=settings.app_secret.get_secret_value(),
        lcid=settings.lcid,
        org_num=settings.org_num,
        timeout_s=settings.timeout_s,
        verify_tls=settings.verify_tls,
        max_attempts=settings.max_attempts,
        transport=context.http_transport,
        now=context.now,
        sleep=context.sleep,
    )
    return K3CloudSource(settings, client)


class K3CloudSource:
    """ErpSource over ExecuteBillQuery. Stateless apart from the client's session."""

    name = "k3cloud"

    def __init__(self, settings: K3CloudSettings, client: K3CloudClient) -> None:
        self.settings = settings
        self.client = client
        self._tz = ZoneInfo(settings.timezone)
        #: the zone the core reads business days in (``sync.ports.source_zone``)
        self.timezone = self._tz
        self._include = frozenset(settings.warehouses_include)
        self._exclude = frozenset(settings.warehouses_exclude)
        self._orgs = frozenset(settings.stock_orgs)
        #: per form: does the server know the built-in base-qty key? (probed once)
        self._base_known: dict[str, bool] = {}
        #: base units and conversions, read when a converting stream first needs them
        self._units: UnitTable | None = None

    def streams(self) -> Sequence[str]:
        return tuple(self.settings.streams)

    def _definition(self, stream: str) -> StreamDef:
        if stream not in self.settings.streams:
            raise ConfigError(
                [ConfigProblem(f"erp.streams.{stream}", "stream not configured for k3cloud")]
            )
        return configured(
            STREAMS[stream],
            qty_field=self.settings.qty_fields.get(stream),
            base_qty_field=self.settings.base_qty_fields.get(stream),
            org_scoped=bool(self._orgs),
        )

    def _readable(self, defn: StreamDef, where: str) -> StreamDef:
        """``defn``, converting line quantities if the server lacks its base-qty key.

        The built-in base keys are partly inferred (k3cloud-stock-quantities.md
        §1.2), so the first pull of a form asks for its key once; MsgCode 9 naming
        it switches the form to conversion. A key set in ``base_qty_fields`` is the
        user's word: its MsgCode 9 is a ConfigError, as for any unknown key.
        """
        if defn.convert_units or defn.name in self.settings.base_qty_fields:
            return defn
        known = self._base_known.get(defn.form_id)
        if known is None:
            known = self._probe(defn, where)
            self._base_known[defn.form_id] = known
        return defn if known else converting(defn)

    def _probe(self, defn: StreamDef, where: str) -> bool:
        query = {
            "FormId": defn.form_id,
            "FieldKeys": f"FID,{defn.base_qty_field}",
            "FilterString": "",
            "TopRowCount": 1,
            "Limit": 1,
        }
        try:
            self.client.execute_bill_query(query, where=where)
        except MissingFieldError as exc:
            if exc.field.lower() != defn.base_qty_field.lower():
                raise
            return False
        return True

    def _decoder(self, defn: StreamDef, where: str) -> RowDecoder:
        """A decoder with the scope rules and, when converting, the source's unit table.

        The table (every material's base unit and conversion) is read when a row first
        needs it and kept for the source's life, shared by the streams; a line it cannot
        convert makes this pull read it again once (a material or a conversion added in
        the ERP since), so a line is quarantined only against fresh master data.
        """
        fresh = [False]

        def load() -> UnitTable:
            fresh[0] = True
            self._units = UnitTable.load(self.client, page_size=SCAN_PAGE_SIZE, where=where)
            return self._units

        def to_base(material: str, unit: Any, qty: Decimal) -> Decimal:
            table = self._units or load()
            try:
                return table.to_base(material, unit, qty)
            except ValueError:
                if fresh[0]:
                    raise
                return load().to_base(material, unit, qty)

        return RowDecoder(
            defn,
            self._tz,
            self._in_scope,
            orgs=self._orgs,
            to_base=to_base if defn.convert_units else None,
        )

    def _in_scope(self, warehouse: str) -> bool:
        if self._include and warehouse not in self._include:
            return False
        return warehouse not in self._exclude

    def _filter(self, *conditions: str, org_fields: Sequence[str] = (STOCK_ORG,)) -> str:
        """``conditions`` AND-ed, plus: any of ``org_fields`` is one of ``stock_orgs``.

        A transfer is read when either side's org is in scope; the decoder then
        counts only the sides whose own org is (k3cloud.md §4).
        """
        parts = [c for c in conditions if c]
        if self.settings.stock_orgs:
            orgs = " OR ".join(
                f"{org}.FNumber = {sql_quote(o)}"
                for org in org_fields
                for o in self.settings.stock_orgs
            )
            parts.append(f"({orgs})")
        return " AND ".join(parts)

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Lines of documents changed at or after ``since``, every status, in pages of whole
        documents ordered by (FID, entry id); ``since`` None reads everything.

        The lower bound is fixed for the whole pull and pages follow a keyset, so edits
        between pages lose nothing (architecture §4.1). Only the last page carries a
        cursor: the newest stamp read, which the core caps at run start − overlap.
        """
        where = f"erp.streams.{stream}"
        defn = self._readable(self._definition(stream), where)
        keys = field_keys(defn)
        query = {
            "FormId": defn.form_id,
            "FieldKeys": ",".join([*keys, *self.settings.status_dates]),
            "FilterString": self._pull_filter(since, defn),
            "SubSystemId": "",
        }
        fid_at = keys.index("FID")
        keyset = [("FID", fid_at, "num"), (defn.entry_id_key, keys.index(defn.entry_id_key), "num")]
        answers = self.client.iter_keyset(query, keyset, page_size=page_size, where=where)
        decoder = self._decoder(defn, where)
        width = len(keys)
        stamps = _Stamps(
            self._tz,
            [keys.index("FModifyDate"), *range(width, width + len(self.settings.status_dates))],
        )
        prefix = f"{SOURCE}:{defn.form_id}:"
        for rows, last in whole_documents(answers, fid_at):
            stamps.see(rows)
            for row in rows:
                del row[width:]  # the status dates: the decoder reads field_keys(defn) only
            movements, rejects = self._decode_page(decoder, defn, stream, rows)
            documents = {prefix + str(fid) for fid in {row[fid_at] for row in rows}}
            yield Page(
                stream=stream,
                movements=movements,
                cursor=stamps.cursor() if last else None,
                rejects=rejects,
                complete_documents=frozenset(documents),
            )

    def _pull_filter(self, since: Cursor | None, defn: StreamDef) -> str:
        """The first pull reads the documents of ``stock_orgs`` only; an incremental pull
        reads every document changed since the cursor, whatever its org: an edit can move
        a document out of scope (another warehouse, another org), and only a re-read
        tells the ledger that its lines stopped counting. The decoder yields lines out of
        scope inactive, side by side (architecture §10.2)."""
        changed = self._changed_since(since)
        return self._filter(changed, org_fields=defn.org_fields) if since is None else changed

    def _changed_since(self, since: Cursor | None) -> str:
        """FModifyDate or any status date at or after ``since``, in the ERP's local time
        reaching back over a clock change (``earliest_local_reading``)."""
        if since is None:
            return ""
        bound = earliest_local_reading(since.updated_at, self._tz).strftime(ERP_DATETIME_FORMAT)
        dates = ["FModifyDate", *self.settings.status_dates]
        return "(" + " OR ".join(f"{d} >= '{bound}'" for d in dates) + ")"

    def _decode_page(
        self, decoder: RowDecoder, defn: StreamDef, stream: str, rows: list[list[Any]]
    ) -> tuple[list[Movement], list[RejectedRecord]]:
        movements: list[Movement] = []
        rejects: list[RejectedRecord] = []
        decode = decoder.decode
        for row in rows:
            try:
                movements.extend(decode(row))
            except RecordError as exc:
                rejects.append(
                    RejectedRecord(
                        stream=stream,
                        reason=exc.message,
                        raw=row_as_dict(defn, row),
                        key=exc.key,
                        field=exc.field,
                    )
                )
        return movements, rejects

    def keys_in_window(self, stream: str, since: datetime) -> Iterator[str]:
        """Keys of every line whose FDate >= ``since``, whatever its status or org (ids only):
        a document moved out of ``stock_orgs`` is still in the ERP, not deleted."""
        defn = self._definition(stream)
        bound = earliest_local_reading(since, self._tz).strftime(ERP_DATETIME_FORMAT)
        query = {
            "FormId": defn.form_id,
            "FieldKeys": ",".join(key_field_keys(defn)),
            "FilterString": f"FDate >= '{bound}'",
            "SubSystemId": "",
        }
        keyset = [("FID", 0, "num"), (defn.entry_id_key, 1, "num")]
        where = f"erp.streams.{stream}"
        for rows in self.client.iter_keyset(query, keyset, page_size=SCAN_PAGE_SIZE, where=where):
            for fid, entry_id in rows:
                yield from keys_for(defn, fid, entry_id)

    def on_hand(self) -> Iterator[OnHand]:
        """STK_Inventory FBaseQty per material × warehouse, summed over lots/locations/status
        (``stock_reads.on_hand``: keyset by FID, the org scope in the filter)."""
        return stock_reads.on_hand(self.client, self._filter, self._in_scope)

    def reserved(self) -> list[Reserved] | None:
        """STK_Inventory FBaseLockQty (locked / reserved) per material × warehouse, base
        unit; None when ``reservations`` is off (the CRM then shows available = on hand).

        One keyset read of the locked rows only (FilterString ``FBaseLockQty <> 0`` plus
        the org scope), so a cycle's cost grows with the locked rows. The CRM's available
        is the ledger's on hand − this, not FBaseAvbQty (why: ``stock_reads``). Raises
        ConfigError at ``erp.reservations`` if the server does not know FBaseLockQty.
        """
        if not self.settings.reservations:
            return None
        return stock_reads.reserved(self.client, self._filter, self._in_scope)

    def check(self) -> str:
        """Sign in, read one form's metadata and STK_Inventory's on-hand (and, with
        ``reservations``, lock) key; errors come out typed with hints."""
        form = STREAMS[self.settings.streams[0]].form_id
        self.client.query_business_info(form, where=f"erp.streams.{self.settings.streams[0]}")
        self.client.execute_bill_query(
            {"FormId": INVENTORY_FORM, "FieldKeys": "FStockId.FNumber", "Limit": 1},
            where="erp.on_hand",
        )
        if self.settings.reservations:
            self.client.execute_bill_query(
                {"FormId": INVENTORY_FORM, "FieldKeys": "FBaseLockQty", "Limit": 1},
                where="erp.reservations",
            )
        return (
            f"K/3 Cloud at {self.client.server_url}: signed in as {self.settings.username} "
            f"(data centre {self.settings.acct_id}), {len(self.settings.streams)} streams"
        )

    def close(self) -> None:
        self.client.close()


def whole_documents(
    answers: Iterable[list[list[Any]]], fid_at: int
) -> Iterator[tuple[list[list[Any]], bool]]:
    """Answers in (FID, entry id) order regrouped so that no document is split: the
    rows of the last FID of an answer wait for the next answer, which may hold more
    of its lines. A document that fills a whole answer is longer than a page: it
    waits for as many answers as it takes and comes alone. So a page holds whole
    documents and outgrows the page size by less than one document, or is one
    document. Yields (rows, last): ``last`` marks the final group, after the empty
    answer.
    """
    pending: list[list[Any]] = []
    alone = False  # pending is one document that filled a whole answer
    for rows in answers:
        batch = pending + rows if pending else rows
        if alone:
            fid = batch[0][fid_at]
            end = next((i for i, row in enumerate(batch) if row[fid_at] != fid), len(batch))
            if end < len(batch):
                yield batch[:end], False
                batch = batch[end:]
        last_fid = batch[-1][fid_at]
        cut = len(batch)
        while cut > 0 and batch[cut - 1][fid_at] == last_fid:
            cut -= 1
        if cut:
            yield batch[:cut], False
        pending, alone = batch[cut:], cut == 0 and len(batch) >= len(rows)
    if pending:
        yield pending, True


class _Stamps:
    """The newest change stamp read in one pull (FModifyDate or a status date)."""

    def __init__(self, zone: ZoneInfo, positions: Sequence[int]) -> None:
        self._zone = zone
        self._positions = positions
        #: stamps as sent (lines of a document repeat them); None for a date never set
        self._texts: set[Any] = set()

    def see(self, rows: Sequence[Sequence[Any]]) -> None:
        for position in self._positions:
            self._texts.update({row[position] for row in rows})

    def cursor(self) -> Cursor | None:
        newest: datetime | None = None
        for text in self._texts:
            try:
                stamp = parse_erp_datetime(text, self._zone)
            except ValueError:  # None or unreadable: the decoder quarantines the line
                continue
            newest = stamp if newest is None else max(newest, stamp)
        return None if newest is None else Cursor(newest, "")

"""The K/3 Cloud ErpSource: settings, factory and the four read paths.

Documents are pulled by FModifyDate (every status, so un-approvals and
cancellations arrive as inactive lines), deletions are found by the window
rescan on FDate, and on-hand comes from STK_Inventory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from connectors.k3cloud.client import K3CloudClient, MissingFieldError
from connectors.k3cloud.mapping import (
    STOCK_ORG,
    STREAM_NAMES,
    STREAMS,
    RowDecoder,
    StreamDef,
    configured,
    converting,
    field_keys,
    format_erp_datetime,
    key_field_keys,
    keys_for,
    parse_qty,
    row_as_dict,
    row_cursor,
)
from connectors.k3cloud.units import UnitTable
from sync.errors import ConfigError, ConfigProblem, RecordError
from sync.model import Cursor, Movement, OnHand, Page, RejectedRecord
from sync.ports import ConnectorContext
from sync.settings import Secret, StrictModel, TimeZoneName

INVENTORY_FORM = "STK_Inventory"


class K3CloudSettings(StrictModel):
    """``erp:`` section for a Kingdee K/3 Cloud (金蝶云星空) source."""

    type: Literal["k3cloud"] = "k3cloud"
    server_url: str = Field(
        description="K/3 Cloud site root, e.g. http://erp.example.com/k3cloud/", min_length=8
    )
    acct_id: str = Field(description="data centre id (数据中心ID / 账套ID)", min_length=1)
    username: str = Field(description="integration user name", min_length=1)
    app_id: str = Field(description="third-party app id (第三方系统登录授权 应用ID)", min_length=1)
    app_secret: Secret = Field(description="third-party app secret (应用密钥)")
    lcid: int = Field(2052, description="locale id: 2052 Simplified Chinese, 1033 English")
    org_num: int = Field(0, description="organisation number sent in the login data (0 = default)")
    timeout_s: float = Field(60.0, gt=0, description="HTTP timeout per request, seconds")
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    page_size: int = Field(2000, ge=1, le=10000, description="rows per ExecuteBillQuery page")
    timezone: TimeZoneName = Field(
        "Asia/Shanghai", description="IANA zone of the ERP's naive local times (FDate, FModifyDate)"
    )
    streams: list[str] = Field(
        default_factory=lambda: list(STREAM_NAMES),
        description=f"document streams to pull; known: {', '.join(STREAM_NAMES)}",
    )
    qty_fields: dict[str, str] = Field(
        default_factory=dict,
        description="per-stream key of the quantity in the line's unit (FUnitID), read only "
        "when converting to the base unit, e.g. {count_gain: FGainQty}",
    )
    base_qty_fields: dict[str, str] = Field(
        default_factory=dict,
        description="per-stream key of the quantity in the base unit, e.g. "
        "{sales_outbound: FBaseUnitQty}; '' = the form has none, convert the line qty "
        "with BD_MATERIAL / BD_UNITCONVERTRATE",
    )
    stock_orgs: list[str] = Field(
        default_factory=list,
        description="stock organisation numbers to include (empty = all); each side of a "
        "transfer is matched by its own org (FStockOutOrgId out, FStockOrgId in)",
    )
    warehouses_include: list[str] = Field(
        default_factory=list, description="warehouse numbers to include (empty = all)"
    )
    warehouses_exclude: list[str] = Field(
        default_factory=list, description="warehouse numbers to leave out"
    )
    max_attempts: int = Field(
        5, ge=1, le=20, description="attempts per request on transient errors"
    )

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in STREAMS]
        if unknown:
            raise ValueError(f"unknown stream(s) {unknown}; known: {', '.join(STREAM_NAMES)}")
        if not value:
            raise ValueError("at least one stream is needed")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _known_overrides(self) -> K3CloudSettings:
        for name, overrides in (
            ("qty_fields", self.qty_fields),
            ("base_qty_fields", self.base_qty_fields),
        ):
            unknown = [s for s in overrides if s not in STREAMS]
            if unknown:
                raise ValueError(f"{name}: unknown stream(s) {unknown}")
        return self


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


def _sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class K3CloudSource:
    """ErpSource over ExecuteBillQuery. Stateless apart from the client's session."""

    name = "k3cloud"

    def __init__(self, settings: K3CloudSettings, client: K3CloudClient) -> None:
        self.settings = settings
        self.client = client
        self._tz = ZoneInfo(settings.timezone)
        self._include = frozenset(settings.warehouses_include)
        self._exclude = frozenset(settings.warehouses_exclude)
        self._orgs = frozenset(settings.stock_orgs)
        #: per form: does the server know the built-in base-qty key? (probed once)
        self._base_known: dict[str, bool] = {}

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
        """A decoder with the scope rules and, when converting, a unit table read fresh
        for this pull when its first row needs it (a pull with no rows reads none)."""
        tables: list[UnitTable] = []

        def to_base(material: str, unit: Any, qty: Decimal) -> Decimal:
            if not tables:
                page_size = self.settings.page_size
                tables.append(UnitTable.load(self.client, page_size=page_size, where=where))
            return tables[0].to_base(material, unit, qty)

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
                f"{org}.FNumber = {_sql_quote(o)}"
                for org in org_fields
                for o in self.settings.stock_orgs
            )
            parts.append(f"({orgs})")
        return " AND ".join(parts)

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Lines modified at or after ``since`` (seconds floor, ERP local time), every status."""
        where = f"erp.streams.{stream}"
        defn = self._readable(self._definition(stream), where)
        since_filter = ""
        if since is not None:
            since_filter = f"FModifyDate >= '{format_erp_datetime(since.updated_at, self._tz)}'"
        query = {
            "FormId": defn.form_id,
            "FieldKeys": ",".join(field_keys(defn)),
            "FilterString": self._filter(since_filter, org_fields=defn.org_fields),
            "OrderString": f"FModifyDate ASC, FID ASC, {defn.entry_id_key} ASC",
            "SubSystemId": "",
        }
        size = page_size or self.settings.page_size
        cursor = since
        decoder = self._decoder(defn, where)
        for rows in self.client.iter_bill_query(query, page_size=size, where=where):
            movements, rejects = self._decode_page(decoder, defn, stream, rows)
            for row in reversed(rows):
                last = row_cursor(row, self._tz)
                if last is not None:
                    cursor = max(cursor, last) if cursor is not None else last
                    break
            yield Page(stream=stream, movements=movements, cursor=cursor, rejects=rejects)

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
        """Keys of every line whose FDate >= ``since``, whatever its status (ids only)."""
        defn = self._definition(stream)
        query = {
            "FormId": defn.form_id,
            "FieldKeys": ",".join(key_field_keys(defn)),
            "FilterString": self._filter(
                f"FDate >= '{format_erp_datetime(since, self._tz)}'", org_fields=defn.org_fields
            ),
            "OrderString": f"FID ASC, {defn.entry_id_key} ASC",
            "SubSystemId": "",
        }
        where = f"erp.streams.{stream}"
        for rows in self.client.iter_bill_query(
            query, page_size=self.settings.page_size, where=where
        ):
            for fid, entry_id in rows:
                yield from keys_for(defn, fid, entry_id)

    def on_hand(self) -> Iterator[OnHand]:
        """STK_Inventory FBaseQty per material × warehouse, summed over lots/locations/status."""
        query = {
            "FormId": INVENTORY_FORM,
            "FieldKeys": "FMaterialId.FNumber,FStockId.FNumber,FBaseQty",
            "FilterString": self._filter("FBaseQty <> 0"),
            "OrderString": "FMaterialId.FNumber ASC, FStockId.FNumber ASC",
            "SubSystemId": "",
        }
        totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for rows in self.client.iter_bill_query(
            query, page_size=self.settings.page_size, where="erp.on_hand"
        ):
            for material, warehouse, qty in rows:
                if not material or not warehouse or not self._in_scope(str(warehouse)):
                    continue
                totals[(str(material), str(warehouse))] += parse_qty(qty)
        for (sku, warehouse), qty in sorted(totals.items()):
            if qty != 0:
                yield OnHand(sku=sku, warehouse=warehouse, qty=qty)

    def check(self) -> str:
        """Sign in and read one form's metadata; errors come out typed with hints."""
        form = STREAMS[self.settings.streams[0]].form_id
        self.client.query_business_info(form, where=f"erp.streams.{self.settings.streams[0]}")
        self.client.execute_bill_query(
            {"FormId": INVENTORY_FORM, "FieldKeys": "FStockId.FNumber", "Limit": 1},
            where="erp.on_hand",
        )
        return (
            f"K/3 Cloud at {self.client.server_url}: signed in as {self.settings.username} "
            f"(data centre {self.settings.acct_id}), {len(self.settings.streams)} streams"
        )

    def close(self) -> None:
        self.client.close()

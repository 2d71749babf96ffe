"""Typed settings of the Fxiaoke CRM target (re-exported by ``sink.py`` for the registry)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sync.settings import (
    MAX_ATTEMPTS,
    MAX_RETENTION_S,
    MAX_TIMEOUT_S,
    MAX_WAIT_S,
    HttpUrl,
    Secret,
    StrictModel,
)


class FxiaokeSettings(StrictModel):
    """Where the Fxiaoke tenant is, how to authenticate, and which objects/fields hold stock."""

    type: Literal["fxiaoke"] = "fxiaoke"
    base_url: HttpUrl = Field(
        "https://open.fxiaoke.com",
        description="OpenAPI host; other clouds use their own (e.g. https://open-na.sharecrm.com)",
    )
    app_id: str = Field(description="appId (FSAID_…) of the custom app authorised by the tenant")
    app_secret: Secret = Field(description="appSecret of the app")
    permanent_code: Secret = Field(description="permanentCode granted when the tenant authorised")
    open_user_id: str = Field(
        description="currentOpenUserId (FSUID_…) of a CRM admin: the acting user of every write"
    )
    timeout_s: float = Field(
        30.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="HTTP timeout per request, seconds (at most 1 hour)",
    )
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    rate_limit_calls: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="client-side limit: calls per path per period (Fxiaoke: 100/20 s; ≤ 10^6)",
    )
    rate_limit_period_s: float = Field(
        20.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="period of the client-side limit, seconds (at most 1 hour)",
    )
    max_attempts: int = Field(
        5, ge=1, le=MAX_ATTEMPTS, description="attempts per call on transient errors (≤ 1000)"
    )
    token_refresh_margin_s: float = Field(
        300.0,
        ge=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="refresh the corpAccessToken this long before it expires, seconds "
        "(at most 7 days)",
    )
    lookup_ttl_s: float = Field(
        300.0,
        ge=0,
        le=MAX_RETENTION_S,
        allow_inf_nan=False,
        description="an unknown SKU/warehouse is looked up again at most once per this period, "
        "seconds (at most 30 days)",
    )
    stock_object: str = Field("StockObj", description="apiName of the stock balance object")
    stock_product_field: str = Field("product_id", description="StockObj → product reference")
    stock_warehouse_field: str = Field("warehouse_id", description="StockObj → warehouse reference")
    stock_real_field: str = Field("real_stock", description="field receiving the ledger level")
    stock_available_field: str = Field(
        "available_stock", description="field receiving the level minus reservations"
    )
    stock_blocked_field: str | None = Field(
        "blocked_stock",
        description="field receiving the reserved part (real − available); required on "
        "StockObj (reference §7); null for an object without one (e.g. ErpStockObj)",
    )
    describe_ttl_s: float = Field(
        3600.0,
        gt=0,
        le=MAX_RETENTION_S,
        allow_inf_nan=False,
        description="object describes (fields, required, decimal places) are cached this long, "
        "seconds (at most 30 days)",
    )
    decimal_places: dict[str, Annotated[int, Field(ge=0, le=30)]] = Field(
        default_factory=dict,
        description="field api name → decimal places it holds, over the object describe "
        "(for a tenant whose describe does not say; numbers are rounded half-even to it; "
        "0 to 30)",
    )
    product_object: str = Field("ProductObj", description="apiName of the product object")
    product_code_field: str = Field("product_code", description="product field holding the ERP SKU")
    warehouse_object: str = Field("WarehouseObj", description="apiName of the warehouse object")
    warehouse_code_field: str = Field(
        "number", description="warehouse field holding the ERP warehouse code"
    )
    warehouse_map: dict[str, str] = Field(
        default_factory=dict,
        description="ERP warehouse code → CRM WarehouseObj _id; overrides the lookup by code",
    )
    product_map: dict[str, str] = Field(
        default_factory=dict,
        description="ERP SKU → CRM ProductObj _id; overrides the lookup by code",
    )
    verify_movement_object: bool = Field(
        False,
        description="check-config --connect also verifies the movement mirror object and its "
        "fields (turn on together with the pipeline's push.mirror_movements)",
    )
    movement_object: str = Field(
        "stock_movement__c", description="apiName of the movement mirror object"
    )
    movement_key_field: str = Field(
        "erp_key__c", description="unique text field holding the movement key"
    )
    movement_kind_field: str = Field("kind__c", description="movement kind (text)")
    movement_sku_field: str = Field("sku__c", description="ERP SKU (text)")
    movement_warehouse_field: str = Field("warehouse__c", description="ERP warehouse code (text)")
    movement_qty_field: str = Field("qty__c", description="signed quantity (number)")
    movement_date_field: str = Field("occurred_at__c", description="business date (date_time)")
    movement_doc_no_field: str = Field("doc_no__c", description="ERP document number (text)")
    movement_active_field: str = Field(
        "active__c", description="false once the ERP line is cancelled (true_or_false)"
    )

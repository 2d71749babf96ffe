"""Typed settings of the Salesforce CRM target (re-exported by ``sink.py`` for the registry).

Two set-ups of the stock object (reference §8): Field Service's ``ProductItem`` (the
default: Product2 and Location parents, ``QuantityOnHand``) with a custom External ID
field holding the stocksync key, or a custom object such as ``Inventory_Level__c`` with
lookups to Product2 and a warehouse object. Parents are referenced by their own External
ID fields inside each record (reference §4.3), so no look-up call is ever needed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sync.settings import (
    MAX_ATTEMPTS,
    MAX_RETENTION_S,
    MAX_TIMEOUT_S,
    MAX_WAIT_S,
    HttpUrl,
    Secret,
    StrictModel,
)

#: sObject Collections upsert exists from v46.0 (reference §1)
MIN_API_VERSION = 46.0
#: records one sObject Collections call takes (reference §4.2)
MAX_BATCH = 200


class SalesforceSettings(StrictModel):
    """Where the org is, how to authenticate, and which object and fields hold stock."""

    type: Literal["salesforce"] = "salesforce"
    login_url: HttpUrl = Field(
        description="where tokens are requested (POST {login_url}/services/oauth2/token): the "
        "org's My Domain URL (client credentials need it, reference §2.2), or "
        "https://login.salesforce.com / https://test.salesforce.com for the JWT bearer flow"
    )
    auth: Literal["client_credentials", "jwt_bearer"] = Field(
        "client_credentials",
        description="OAuth 2.0 flow: client_credentials (consumer key + secret, the app's "
        "run-as user) or jwt_bearer (consumer key, username, RS256 private key)",
    )
    client_id: str = Field(description="consumer key of the connected (external client) app")
    client_secret: Secret | None = Field(
        None, description="consumer secret (auth: client_credentials)"
    )
    username: str | None = Field(None, description="the user the JWT names (auth: jwt_bearer)")
    private_key: Secret | None = Field(
        None,
        description="PEM private key whose certificate the app holds (auth: jwt_bearer; "
        "read it from a variable or a file: ${SF_PRIVATE_KEY})",
    )
    audience: str = Field(
        "https://login.salesforce.com",
        description="the JWT's aud: https://login.salesforce.com (production), "
        "https://test.salesforce.com (sandbox) or an Experience Cloud site URL",
    )
    api_version: str = Field(
        "59.0",
        pattern=r"^\d{2,3}\.0$",
        description="REST API version without the v (59.0); at least 46.0, where sObject "
        "Collections upsert appeared",
    )
    ca_cert: str | None = Field(
        None, description="PEM file of the CA to trust instead of the system's (an emulator)"
    )
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    timeout_s: float = Field(
        60.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False, description="HTTP timeout, seconds"
    )
    max_attempts: int = Field(
        5, ge=1, le=MAX_ATTEMPTS, description="attempts per call on transient errors (≤ 1000)"
    )
    session_ttl_s: float = Field(
        3600.0,
        gt=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="how long a token is reused before a new one is asked for, seconds; "
        "Salesforce gives no expiry (reference §2.1) and a 401 renews it earlier",
    )
    batch_size: int = Field(
        MAX_BATCH, ge=1, le=MAX_BATCH, description="records per sObject Collections call (≤ 200)"
    )
    api_budget_ceiling: float = Field(
        0.5,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="pause pushing once the org's daily API usage (Sforce-Limit-Info) reaches "
        "this share of its limit, leaving the rest to the org's other integrations",
    )
    budget_recheck_s: float = Field(
        300.0,
        ge=0,
        le=MAX_RETENTION_S,
        allow_inf_nan=False,
        description="while paused on the API budget, look at the usage again (one call to "
        "/limits) at most this often, seconds",
    )
    describe_ttl_s: float = Field(
        3600.0,
        gt=0,
        le=MAX_RETENTION_S,
        allow_inf_nan=False,
        description="object describes (fields, scale, required) are cached this long, seconds",
    )
    decimal_places: dict[str, Annotated[int, Field(ge=0, le=30)]] = Field(
        default_factory=dict,
        description="field name → decimal places, over the describe's scale (0 to 30)",
    )
    stock_object: str = Field("ProductItem", description="the object holding one record per key")
    stock_key_field: str = Field(
        "ERP_Key__c",
        description="External ID (unique) text field of the stock object holding the key "
        "'<sku><key_separator><warehouse>': the upsert key",
    )
    key_separator: str = Field("|", min_length=1, max_length=3, description="see stock_key_field")
    stock_product_relationship: str = Field(
        "Product2", description="relationship name of the product lookup (custom: Product__r)"
    )
    product_key_field: str = Field(
        "ERP_SKU__c", description="External ID field of the product object holding the ERP SKU"
    )
    stock_location_relationship: str = Field(
        "Location", description="relationship name of the warehouse lookup (custom: Warehouse__r)"
    )
    location_key_field: str = Field(
        "ERP_Code__c",
        description="External ID field of the location (warehouse) object holding the ERP code",
    )
    stock_quantity_field: str = Field(
        "QuantityOnHand", description="number field receiving the ledger level (on hand)"
    )
    stock_available_field: str | None = Field(
        None, description="number field receiving on hand − reserved (null: not written)"
    )
    stock_reserved_field: str | None = Field(
        None, description="number field receiving the reserved part (null: not written)"
    )
    verify_movement_object: bool = Field(
        False,
        description="check-config --connect also verifies the movement mirror object (turn on "
        "with the pipeline's push.mirror_movements)",
    )
    movement_object: str = Field("Stock_Movement__c", description="the movement mirror object")
    movement_key_field: str = Field(
        "ERP_Key__c", description="External ID (unique) text field holding the movement key"
    )
    movement_kind_field: str = Field("Kind__c", description="movement kind (text)")
    movement_sku_field: str = Field("SKU__c", description="ERP SKU (text)")
    movement_warehouse_field: str = Field("Warehouse__c", description="ERP warehouse (text)")
    movement_qty_field: str = Field("Quantity__c", description="signed quantity (number)")
    movement_date_field: str = Field("Occurred_At__c", description="business date (date/time)")
    movement_doc_no_field: str = Field("Document_No__c", description="ERP document number (text)")
    movement_active_field: str = Field(
        "Active__c", description="false once the ERP line is cancelled (checkbox)"
    )

    @model_validator(mode="after")
    def _credentials_of_the_flow(self) -> SalesforceSettings:
        """Each flow's own credentials, and an API version with collections upsert."""
        if self.auth == "client_credentials" and self.client_secret is None:
            raise ValueError("client_secret is required with auth: client_credentials")
        if self.auth == "jwt_bearer" and (self.username is None or self.private_key is None):
            raise ValueError("username and private_key are required with auth: jwt_bearer")
        if float(self.api_version) < MIN_API_VERSION:
            raise ValueError(
                f"api_version {self.api_version} has no sObject Collections upsert (46.0 or later)"
            )
        return self

    @property
    def stock_fields(self) -> list[tuple[str, str]]:
        """(setting, field) of the stock object's fields stocksync writes."""
        fields = [
            ("stock_key_field", self.stock_key_field),
            ("stock_quantity_field", self.stock_quantity_field),
        ]
        if self.stock_available_field:
            fields.append(("stock_available_field", self.stock_available_field))
        if self.stock_reserved_field:
            fields.append(("stock_reserved_field", self.stock_reserved_field))
        return fields

    @property
    def movement_fields(self) -> list[tuple[str, str]]:
        """(setting, field) of the movement mirror's fields, its key first."""
        return [
            (name, getattr(self, name))
            for name in type(self).model_fields
            if name.startswith("movement_") and name.endswith("_field")
        ]

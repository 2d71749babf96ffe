"""The ``erp:`` settings of a Kingdee K/3 Cloud (金蝶云星空) source."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from connectors.k3cloud.streams import STREAM_NAMES, STREAMS
from sync.settings import (
    MAX_INT32,
    MAX_TIMEOUT_S,
    HttpUrl,
    Secret,
    StrictModel,
    TimeZoneName,
)

#: dates that status changes stamp (k3cloud-stock-quantities.md §1.3)
STATUS_DATES = ("FApproveDate", "FCancelDate")
_FIELD_KEY = re.compile(r"F[A-Za-z0-9_]*(\.[A-Za-z0-9_]+)?")


class K3CloudSettings(StrictModel):
    """``erp:`` section for a Kingdee K/3 Cloud (金蝶云星空) source."""

    type: Literal["k3cloud"] = "k3cloud"
    server_url: HttpUrl = Field(
        description="K/3 Cloud site root, e.g. http://erp.example.com/k3cloud/", min_length=8
    )
    acct_id: str = Field(description="data centre id (数据中心ID / 账套ID)", min_length=1)
    username: str = Field(description="integration user name", min_length=1)
    app_id: str = Field(description="third-party app id (第三方系统登录授权 应用ID)", min_length=1)
    app_secret: Secret = Field(description="third-party app secret (应用密钥)")
    lcid: int = Field(
        2052,
        ge=0,
        le=0xFFFF,
        description="locale id: 2052 Simplified Chinese, 1033 English (a 16-bit language id)",
    )
    org_num: int = Field(
        0,
        ge=0,
        le=MAX_INT32,
        description="organisation number sent in the login data (0 = default; ≤ 2^31 − 1)",
    )
    timeout_s: float = Field(
        60.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="HTTP timeout per request, seconds (at most 1 hour)",
    )
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    timezone: TimeZoneName = Field(
        "Asia/Shanghai",
        description="IANA zone of the ERP's naive local times (FDate, FModifyDate); "
        "pull.history_since and backfill --since are midnights in this zone",
    )
    status_dates: list[str] = Field(
        default_factory=lambda: list(STATUS_DATES),
        description="header dates that status changes stamp, pulled like FModifyDate "
        "(audit stamps FApproveDate, cancel FCancelDate; FModifyDate is not documented to move)",
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
    reservations: bool = Field(
        True,
        description="read reserved stock from STK_Inventory FBaseLockQty (locked, base "
        "unit; one keyset read of the locked rows per cycle): the CRM gets available = "
        "on hand − reserved. false: available = on hand, blocked 0",
    )
    max_attempts: int = Field(
        5, ge=1, le=20, description="attempts per request on transient errors"
    )

    @model_validator(mode="before")
    @classmethod
    def _page_size_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "page_size" in data:
            raise ValueError(
                "erp.page_size is no longer read: set pull.page_size (rows per page, one "
                "transaction each; also the Limit of each ExecuteBillQuery, at most 10000)"
            )
        return data

    @field_validator("status_dates")
    @classmethod
    def _field_keys(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _FIELD_KEY.fullmatch(v)]
        if bad:
            raise ValueError(f"not field keys: {bad}")
        return list(dict.fromkeys(value))

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

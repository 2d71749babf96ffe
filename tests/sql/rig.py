"""A pipeline from a shipped SQL mapping to the Fxiaoke emulator, as a user would configure it.

The mapping file is loaded into a whole config through the real loader (``${ERP_DB_URL}``
filled from the environment given); the ERP database is the one an emulator writes; the
state is an in-memory SQLite; the CRM is the Fxiaoke emulator called in-process. A cycle
is ``sync.runtime.run_cycle`` (baseline, pull, reserved stock, push), with ``on_page`` to
act on the ERP between the pages of its pull, and the window rescan is ``Pipeline.rescan``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from connectors._emulator import transport_for
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_crm
from sync.config.load import parse
from sync.runtime import Pipeline, build_pipeline, open_store, run_cycle

MAPPINGS = Path(__file__).resolve().parents[2] / "connectors" / "sql" / "mappings"
CRM_URL = "http://fxiaoke.test"


def mapping(name: str) -> dict[str, Any]:
    """The ``erp:`` section of a shipped mapping (``b1`` or ``u8``), as YAML data."""
    data = yaml.safe_load((MAPPINGS / f"{name}.yaml").read_text(encoding="utf-8"))
    section: dict[str, Any] = data["erp"]
    return section


def config_text(erp: dict[str, Any], crm: FxiaokeEmulator, *, page_size: int) -> str:
    """A whole config: one pipeline ``main`` from ``erp`` to ``crm``; state in memory."""
    info = crm.connection_info(CRM_URL)
    config = {
        "state": {"url": "sqlite://"},
        "metrics": None,
        "pipelines": [
            {
                "name": "main",
                "pull": {"page_size": page_size},
                "push": {"retry_initial_s": 1},
                "erp": erp,
                "crm": {
                    "type": "fxiaoke",
                    "base_url": info["url"],
                    "app_id": info["app_id"],
                    "app_secret": info["app_secret"],
                    "permanent_code": info["permanent_code"],
                    "open_user_id": info["open_user_id"],
                    "max_attempts": 2,
                },
            }
        ],
    }
    return yaml.safe_dump(config, allow_unicode=True)


class Rig:
    """One pipeline over an ERP database, and the CRM it pushes to."""

    def __init__(
        self,
        name: str,
        erp_url: str,
        *,
        products: Iterable[str],
        warehouses: Iterable[str],
        page_size: int = 2,
        **stream_overrides: Any,
    ) -> None:
        self.crm = build_crm(None)
        for code in products:
            self.crm.add_product(code, code)
        for number in warehouses:
            self.crm.add_warehouse(number, number)
        erp = mapping(name)
        for stream in erp["streams"]:
            stream.update(stream_overrides)
        text = config_text(erp, self.crm, page_size=page_size)
        settings = parse(text, source=f"{name}.yaml", env={"ERP_DB_URL": erp_url})
        self.pipeline: Pipeline = build_pipeline(
            settings.pipelines[0], open_store(settings), http_transport=transport_for(self.crm)
        )

    def cycle(self, on_page: Callable[[Any], None] | None = None) -> None:
        """One cycle; raises when it fails or quarantines a line."""
        result = run_cycle(self.pipeline, on_page=on_page)
        assert result.ok, result.error
        assert result.rejected == 0
        assert result.push.failed == 0

    def rescan(self) -> list[str]:
        """The window rescan; the keys it withdrew."""
        return list(self.pipeline.rescan().vanished)

    def levels(self) -> dict[tuple[str, str], Decimal]:
        """The ledger's non-zero levels."""
        store = self.pipeline.store
        return {(k.sku, k.warehouse): v for k, v in store.levels("main").items() if v}

    def on_hand(self) -> dict[tuple[str, str], Decimal]:
        """The mapping's on_hand query, through the source, non-zero keys."""
        return {(r.sku, r.warehouse): r.qty for r in self.pipeline.source.on_hand() if r.qty}

    def crm_stock(self) -> dict[tuple[str, str], Decimal]:
        """The CRM's real stock, non-zero keys (raises on a duplicate record)."""
        return {k: v for k, v in self.crm.stock_by_code().items() if v}

    def assert_exact(self, erp: dict[tuple[str, str], Decimal]) -> None:
        """Ledger = the on-hand query = the ERP's own table = the CRM, on every key."""
        on_hand = self.on_hand()
        assert on_hand == erp
        assert self.levels() == on_hand
        assert self.crm_stock() == on_hand

    def close(self) -> None:
        self.pipeline.close()
        self.pipeline.store.close()


class BetweenPages:
    """An ``on_page`` hook: runs each ``(n, act)`` after the n-th page of the pull (n ≥ 1);
    ``ran`` counts those run (acts past the last page never run)."""

    def __init__(self, acts: Sequence[tuple[int, Callable[[], None]]]) -> None:
        self.pending = sorted((a for a in acts if a[0] > 0), key=lambda a: a[0])
        self.pages = 0
        self.ran = 0

    def __call__(self, _: Any) -> None:
        self.pages += 1
        while self.pending and self.pending[0][0] == self.pages:
            self.pending.pop(0)[1]()
            self.ran += 1

"""`stocksync demo`: both emulators on loopback, a story arriving over time, the real engine.

Nothing here is faked beyond the two external systems: the K/3 Cloud emulator and a CRM
emulator (Fxiaoke, or Salesforce with ``--crm salesforce``) are served over HTTP on free
loopback ports, the pipeline is built from a config through the registry like any other,
and every cycle is the daemon's own pull → push cycle against a SQLite state database.
"""

from __future__ import annotations

import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.emulator import build_emulator as build_crm
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.emulator import build_emulator as build_erp
from connectors.salesforce.emulator import SalesforceEmulator

PRODUCTS = {"A-100": "Product A", "PHONE-X": "Phone X", "TABLET-S": "Tablet S"}
WAREHOUSES = {"WH-MAIN": "Main warehouse", "WH-EAST": "East warehouse"}
#: safety stock, judged on available (``alerts.basis: available``)
SAFETY = {"TABLET-S": Decimal(10), "PHONE-X": Decimal(20)}


@dataclass(frozen=True)
class Step:
    say: str
    act: Callable[[K3CloudEmulator], None]


#: each ERP's open sales orders: material → the lock id of its reservation
_ORDERS: weakref.WeakKeyDictionary[K3CloudEmulator, dict[str, str]] = weakref.WeakKeyDictionary()


def _reserve(material: str, qty: int, stock: str = "WH-MAIN") -> Callable[[K3CloudEmulator], None]:
    """A sales order reserves stock (a lock, 锁库): on hand stays, available drops."""

    def act(erp: K3CloudEmulator) -> None:
        _ORDERS.setdefault(erp, {})[material] = erp.lock(material, stock, qty)

    return act


def _ship_reserved(material: str) -> Callable[[K3CloudEmulator], None]:
    """The reserved order ships: one delivery, and its lock released, in one ERP step."""

    def act(erp: K3CloudEmulator) -> None:
        erp.ship_locked(_ORDERS[erp].pop(material))

    return act


def _approved(form: str, lines: list[dict[str, Any]]) -> Callable[[K3CloudEmulator], None]:
    def act(erp: K3CloudEmulator) -> None:
        erp.audit(form, erp.create_document(form, lines))

    return act


def _line(material: str, qty: int, stock: str = "WH-MAIN") -> dict[str, Any]:
    return {"material": material, "qty": str(qty), "stock": stock}


STORY = [
    Step("20 of product A received", _approved("STK_InStock", [_line("A-100", 20)])),
    Step("10 of product A sold", _approved("SAL_OUTSTOCK", [_line("A-100", 10)])),
    Step(
        "5 of product A returned by a customer", _approved("SAL_RETURNSTOCK", [_line("A-100", 5)])
    ),
    Step(
        "an order of 100 phones and 50 tablets shipped",
        _approved("SAL_OUTSTOCK", [_line("PHONE-X", 100), _line("TABLET-S", 50)]),
    ),
    Step(
        "40 phones transferred from WH-MAIN to WH-EAST",
        _approved(
            "STK_TransferDirect",
            [{"material": "PHONE-X", "qty": "40", "src_stock": "WH-MAIN", "dest_stock": "WH-EAST"}],
        ),
    ),
    Step("30 phones returned", _approved("SAL_RETURNSTOCK", [_line("PHONE-X", 30)])),
    Step(
        "25 tablets reserved by an order: available drops first",
        _reserve("TABLET-S", 25),
    ),
    Step("the 25 reserved tablets shipped: now on hand drops", _ship_reserved("TABLET-S")),
]


def seed_erp(erp: K3CloudEmulator) -> None:
    """Opening stock in the ERP."""
    erp.set_opening("A-100", "WH-MAIN", 100)
    erp.set_opening("PHONE-X", "WH-MAIN", 200)
    erp.set_opening("TABLET-S", "WH-MAIN", 80)


def seed(erp: K3CloudEmulator, crm: FxiaokeEmulator) -> None:
    """Opening stock in the ERP; products and warehouses known to the CRM (no stock yet)."""
    seed_erp(erp)
    for code, name in PRODUCTS.items():
        crm.add_product(code, name)
    for number, name in WAREHOUSES.items():
        crm.add_warehouse(number, name)


class FxiaokeSide:
    """The demo's CRM when it is Fxiaoke: StockObj real, blocked and available stock."""

    title = "Fxiaoke"

    def __init__(self) -> None:
        self.emulator: Any = build_crm(None)

    def seed(self) -> None:
        for code, name in PRODUCTS.items():
            self.emulator.add_product(code, name)
        for number, name in WAREHOUSES.items():
            self.emulator.add_warehouse(number, name)

    def settings(self, url: str) -> dict[str, Any]:
        info = self.emulator.connection_info(url)
        keys = ("app_id", "app_secret", "permanent_code", "open_user_id")
        return {"type": "fxiaoke", "base_url": info["url"], **{k: info[k] for k in keys}}

    def figures(self) -> dict[tuple[str, str], Figures]:
        return crm_figures(self.emulator)


class SalesforceSide:
    """The demo's CRM when it is Salesforce: ProductItem's QuantityOnHand and the demo
    org's Reserved_Quantity__c / Available_Quantity__c, upserted by ERP_Key__c."""

    title = "Salesforce"

    def __init__(self) -> None:
        self.emulator: SalesforceEmulator = SalesforceEmulator()

    def seed(self) -> None:
        for code, name in PRODUCTS.items():
            self.emulator.add_product(code, name)
        for code, name in WAREHOUSES.items():
            self.emulator.add_location(code, name)

    def settings(self, url: str) -> dict[str, Any]:
        info = self.emulator.connection_info(url)
        return {
            "type": "salesforce",
            "login_url": info["url"],
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "stock_available_field": "Available_Quantity__c",
            "stock_reserved_field": "Reserved_Quantity__c",
        }

    def figures(self) -> dict[tuple[str, str], Figures]:
        real = self.emulator.levels()
        reserved = self.emulator.levels(field="Reserved_Quantity__c")
        available = self.emulator.levels(field="Available_Quantity__c")
        return {key: (real[key], reserved[key], available[key]) for key in real}


CRM_SIDES: dict[str, type[FxiaokeSide] | type[SalesforceSide]] = {
    "fxiaoke": FxiaokeSide,
    "salesforce": SalesforceSide,
}


def demo_config(
    erp_info: dict[str, Any], crm_info: dict[str, Any], state_url: str, interval_s: float
) -> dict[str, Any]:
    """The config a user would write for these two systems (as a dict); ``crm_info`` is
    the ``crm:`` section (``FxiaokeSide.settings``, ``SalesforceSide.settings``)."""
    return {
        "state": {"url": state_url},
        "metrics": None,
        "pipelines": [
            {
                "name": "demo",
                "schedule": {"interval_s": max(1.0, interval_s)},
                "pull": {"page_size": 500},
                "push": {"retry_initial_s": 1},
                "alerts": {
                    "basis": "available",
                    "thresholds": {k: str(v) for k, v in SAFETY.items()},
                },
                "erp": {
                    "type": "k3cloud",
                    "server_url": erp_info["url"],
                    "acct_id": erp_info["acct_id"],
                    "username": erp_info["username"],
                    "app_id": erp_info["app_id"],
                    "app_secret": erp_info["app_secret"],
                    "lcid": erp_info["lcid"],
                },
                "crm": crm_info,
            }
        ],
    }


#: one stock key's figures: on hand, reserved (ERP) or blocked (CRM), available
Figures = tuple[Decimal, Decimal, Decimal]


def render(
    erp: dict[tuple[str, str], Figures],
    crm: dict[tuple[str, str], Figures],
    events: list[str],
    elapsed_s: float,
    crm_title: str = "Fxiaoke",
) -> Group:
    """The live table: each key's ERP figures beside the CRM's, and whether they agree."""
    table = Table(title=f"ERP (K/3 Cloud) vs CRM ({crm_title}) — {elapsed_s:.0f}s")
    for column in ("product", "warehouse", "ERP\non hand", "ERP\nreserved", "CRM\nreal"):
        table.add_column(column, justify="left" if column.islower() else "right", no_wrap=True)
    table.add_column("CRM\navailable", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for key in sorted(set(erp) | set(crm)):
        e, c = erp.get(key, (Decimal(0),) * 3), crm.get(key)
        same = c is not None and c == e
        # safety stock is judged on available (alerts.basis): all reserved is out of stock
        low = key[0] in SAFETY and e[2] < SAFETY[key[0]]
        mark = ("in sync" if same else "syncing…") + (" · LOW" if low else "")
        real, available = ("—", "—") if c is None else (str(c[0]), str(c[2]))
        table.add_row(key[0], key[1], str(e[0]), str(e[1]), real, available, mark)
    return Group(table, Text("\n".join(events[-6:]), style="dim"))


def erp_figures(erp: K3CloudEmulator) -> dict[tuple[str, str], Figures]:
    """On hand, reserved (FBaseLockQty) and available per key, as the ERP holds them."""
    on_hand, reserved = erp.inventory(), erp.reserved()
    out: dict[tuple[str, str], Figures] = {}
    for key in on_hand.keys() | reserved.keys():
        held, locked = on_hand.get(key, Decimal(0)), reserved.get(key, Decimal(0))
        out[key] = (held, locked, held - locked)
    return out


def crm_figures(crm: FxiaokeEmulator) -> dict[tuple[str, str], Figures]:
    """real_stock, blocked_stock and available_stock per key, as the CRM shows them."""
    real, blocked = crm.stock_by_code(), crm.stock_by_code("blocked_stock")
    available = crm.stock_by_code("available_stock")
    return {key: (real[key], blocked[key], available[key]) for key in real}


class DemoRun:
    """One demo: emulators on loopback, the real daemon between them, a live table."""

    def __init__(
        self,
        *,
        duration_s: float,
        keep_running: bool,
        console: Console,
        folder: Path,
        crm: str = "fxiaoke",
    ) -> None:
        self.console = console
        self.keep_running = keep_running
        self.folder = folder
        self.duration_s = duration_s
        self.interval = max(1.0, duration_s / (len(STORY) + 2))
        self.erp, self.side = build_erp(None), CRM_SIDES[crm]()
        self.crm = self.side.emulator
        seed_erp(self.erp)
        self.side.seed()
        self.events: list[str] = []
        self.started = time.monotonic()

    def config_file(self, erp_url: str, crm_url: str) -> Path:
        raw = demo_config(
            self.erp.connection_info(erp_url),
            self.side.settings(crm_url),
            f"sqlite:///{self.folder / 'demo.db'}",
            self.interval,
        )
        raw["log"] = {"level": "warning"}
        path = self.folder / "stocksync.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def table(self) -> Group:
        elapsed = time.monotonic() - self.started
        crm = self.side.figures()
        return render(erp_figures(self.erp), crm, self.events, elapsed, self.side.title)

    def equal(self) -> bool:
        """ERP and CRM agree on on hand, reserved and available for every key."""
        erp, crm = erp_figures(self.erp), self.side.figures()
        return erp == {k: v for k, v in crm.items() if any(v) or k in erp}

    def play(self, live: Live) -> None:
        """The story, one step per interval, while the daemon syncs on its own schedule."""
        self.events.append(
            f"{datetime.now(UTC):%H:%M:%S} ERP: opening stock: A-100 100, "
            "PHONE-X 200, TABLET-S 80 at WH-MAIN"
        )
        for step in STORY:
            self._wait(live, self.interval)
            step.act(self.erp)
            self.events.append(f"{datetime.now(UTC):%H:%M:%S} ERP: {step.say}")
        deadline = time.monotonic() + 6 * self.interval + 5
        while not self.equal() and time.monotonic() < deadline:
            self._wait(live, 0.25)
        # the rest of the requested duration: the daemon keeps cycling, nothing changes
        self._wait(live, self.duration_s - (time.monotonic() - self.started))
        while self.keep_running:
            self._wait(live, self.interval)

    def _wait(self, live: Live, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.25, left))
            live.update(self.table())

    def summary(self, equal: bool) -> None:
        erp = self.erp.inventory()
        figures = erp_figures(self.erp)
        low = sorted(
            f"{s}@{w} (available {f[2]} < {SAFETY[s]})"
            for (s, w), f in figures.items()
            if s in SAFETY and f[2] < SAFETY[s]
        )
        self.console.print()
        self.console.print(
            f"{'ERP and CRM are equal' if equal else 'ERP and CRM DIFFER'}: "
            f"{len(erp)} product × warehouse keys in {time.monotonic() - self.started:.0f}s; "
            f"product A at WH-MAIN = {erp.get(('A-100', 'WH-MAIN'))}; "
            f"tablets available at WH-MAIN = {figures[('TABLET-S', 'WH-MAIN')][2]}; "
            f"low stock: {', '.join(low) or 'none'}",
            markup=False,
        )


def run_demo(
    *,
    duration_s: float = 30.0,
    keep_running: bool = False,
    console: Console | None = None,
    state_dir: Path | None = None,
    crm: str = "fxiaoke",
) -> bool:
    """Play the story against the real daemon; True when ERP and CRM end equal.
    ``crm``: the CRM emulator, "fxiaoke" or "salesforce"."""
    from sync.service.daemon import Daemon

    console = console or Console()
    tmp = tempfile.TemporaryDirectory(prefix="stocksync-demo-") if state_dir is None else None
    folder = Path(tmp.name) if tmp else Path(state_dir or ".").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    demo = DemoRun(
        duration_s=duration_s, keep_running=keep_running, console=console, folder=folder, crm=crm
    )
    try:
        with LoopbackServer(demo.erp) as erp_srv, LoopbackServer(demo.crm) as crm_srv:
            daemon = Daemon(demo.config_file(erp_srv.url, crm_srv.url))
            daemon.start()
            try:
                with Live(demo.table(), console=console, refresh_per_second=4) as live:
                    demo.play(live)
            except KeyboardInterrupt:
                pass
            finally:
                daemon.shutdown()
            equal = demo.equal()
            demo.summary(equal)
        if tmp is None:
            config = folder / "stocksync.yaml"
            console.print(
                f"state kept in {folder}: try `stocksync report -c {config}` "
                f"or `stocksync alerts list -c {config}`",
                markup=False,
            )
        return equal
    finally:
        if tmp is not None:
            tmp.cleanup()

"""A real Tryton server for tests: database template, start/stop, proteus scenario steps.

Reusable outside this package (the end-to-end tests use it too). Nothing is
installed here: trytond, trytond-stock and proteus must already be importable.

- The initialised SQLite database (``trytond-admin -u stock`` plus a company, a
  second warehouse, parties and products) is built once and cached under
  ``$STOCKSYNC_TEST_CACHE`` (default ``~/.cache/stocksync-tests``), keyed by the
  installed versions and ``TEMPLATE_REVISION``; each session works on a copy.
- The server runs on a free loopback port with ``TZ=UTC`` and is ready only when
  it answered a real JSON-RPC call, so a foreign program on the port cannot pass
  for it.
- Scenario steps use proteus (Tryton's own client) over XML-RPC, so the test
  process never imports the server-side pool.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

MODULES = ("stock",)
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "admin-test-pass"
DATABASE = "erp"
#: bump when base_setup() changes, so cached templates are rebuilt
TEMPLATE_REVISION = "1"

SKUS = ("SKU-001", "SKU-002", "SKU-003")
WAREHOUSES = ("WH", "WH2")

_BOOT = "import sys; from trytond.cli{mod} import main; sys.argv[0] = {name!r}; sys.exit(main())"


def _boot(script: str) -> list[str]:
    """Run trytond's console script with this interpreter (no PATH or venv layout assumed)."""
    mod = ".admin" if script == "trytond-admin" else ""
    return [sys.executable, "-c", _BOOT.format(mod=mod, name=script)]


def trytond_missing() -> str | None:
    """Why a Tryton server cannot run here, or None when it can."""
    for module in ("trytond", "trytond.modules.stock", "proteus"):
        try:
            __import__(module)
        except ImportError as exc:
            return f"{module} is not importable ({exc}); install the 'test' extra"
    return None


def template_key() -> str:
    """Cache key: installed versions of everything that shapes the database file."""
    parts = [TEMPLATE_REVISION, sys.version.split()[0], ",".join(MODULES)]
    for dist in ("trytond", "trytond-stock", "trytond-company", "trytond-product", "proteus"):
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=none")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    root = os.environ.get("STOCKSYNC_TEST_CACHE") or Path.home() / ".cache" / "stocksync-tests"
    return Path(root) / "tryton"


@dataclass
class TrytonServer:
    """A running trytond serving one SQLite database on loopback."""

    url: str
    database: str
    username: str
    password: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        """The database's RPC endpoint (JSON-RPC and proteus' XML-RPC alike)."""
        return f"{self.url}/{self.database}/rpc/"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Raw TrytonSettings values for this server (validate with the connector's model)."""
        values: dict[str, Any] = {
            "type": "tryton",
            "url": self.url,
            "database": self.database,
            "username": self.username,
            "password": self.password,
            "timeout_s": 10.0,
            "max_attempts": 2,
        }
        values.update(overrides)
        return values


# -- files and processes ----------------------------------------------------------------


def write_config(workdir: Path) -> Path:
    """trytond.conf for SQLite files under ``workdir/db`` (no inline comments: ConfigParser)."""
    (workdir / "db").mkdir(parents=True, exist_ok=True)
    conf = workdir / "trytond.conf"
    conf.write_text(
        "[database]\nuri = sqlite://\n"
        f"path = {workdir / 'db'}\nlist = True\n"
        "[session]\ntimeout = 3600\nmax_attempt = 100\n"
    )
    return conf


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYTOND_")}
    env.update(TZ="UTC", PYTHONUNBUFFERED="1", **extra)
    return env


def db_file(workdir: Path, database: str = DATABASE) -> Path:
    return workdir / "db" / f"{database}.sqlite"


def init_database(workdir: Path, database: str = DATABASE) -> None:
    """Create the database with trytond-admin (-u stock, dependencies, admin e-mail)."""
    conf = write_config(workdir)
    target = db_file(workdir, database)
    target.touch()  # trytond's SQLite backend refuses a missing file
    passfile = workdir / "passfile"
    passfile.write_text(ADMIN_PASSWORD + "\n")
    cmd = [
        *_boot("trytond-admin"),
        "-c",
        str(conf),
        "-d",
        database,
        "-u",
        *MODULES,
        "--activate-dependencies",
        "--email",
        "admin@example.invalid",
    ]
    log = workdir / "admin.log"
    with log.open("wb") as out:
        done = subprocess.run(
            cmd, env=_env(TRYTONPASSFILE=str(passfile)), stdout=out, stderr=out, timeout=300
        )
    if done.returncode != 0:
        raise RuntimeError(f"trytond-admin failed ({done.returncode}):\n{log.read_text()[-3000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc(url: str, method: str, params: list[Any], auth: str | None = None) -> Any:
    """One plain JSON-RPC call (urllib); returns the envelope's result or raises RuntimeError."""
    body = json.dumps({"id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if answer.get("error"):
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer.get("result")


def start_server(
    workdir: Path, database: str = DATABASE, *, timeout_s: float = 60.0
) -> TrytonServer:
    """Start trytond on a free loopback port and wait for a real JSON-RPC answer."""
    conf = write_config(workdir)
    for _attempt in range(3):
        port = _free_port()
        log = (workdir / "server.log").open("ab")
        process = subprocess.Popen(
            [*_boot("trytond"), "-c", str(conf), "-d", database],
            env=_env(TRYTOND_WEB__LISTEN=f"127.0.0.1:{port}"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = TrytonServer(
            f"http://127.0.0.1:{port}", database, ADMIN_LOGIN, ADMIN_PASSWORD, workdir, process
        )
        if _wait_ready(server, timeout_s):
            return server
        stop_server(server)  # port taken by someone else, or a crash: try another port
    tail = (workdir / "server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"trytond did not start:\n{tail}")


def _wait_ready(server: TrytonServer, timeout_s: float) -> bool:
    assert server.process is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            if rpc(f"{server.url}/rpc/", "common.server.version", []):
                return True
        time.sleep(0.2)
    return False


def stop_server(server: TrytonServer, *, timeout_s: float = 20.0) -> None:
    """SIGTERM and wait (trytond takes a few seconds); SIGKILL if it will not go."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_server(workdir: Path, database: str = DATABASE) -> Iterator[TrytonServer]:
    server = start_server(workdir, database)
    try:
        yield server
    finally:
        stop_server(server)


def copy_database(src: Path, dst: Path) -> None:
    """Copy a SQLite file consistently (WAL included) and drop stale -wal/-shm at ``dst``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(src)) as source,
        contextlib.closing(sqlite3.connect(dst)) as target,
    ):
        source.backup(target)


def ensure_template() -> Path:
    """The cached, fully initialised database file; built (≈15–25 s) when missing."""
    cached = cache_dir() / f"{DATABASE}-{template_key()}.sqlite"
    if cached.exists():
        return cached
    with tempfile.TemporaryDirectory(prefix="stocksync-tryton-build-") as tmp:
        workdir = Path(tmp)
        init_database(workdir)
        with running_server(workdir) as server, proteus_session(server) as config:
            base_setup(config)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        copy_database(db_file(workdir), partial)
        partial.replace(cached)
    return cached


def prepare_workdir(workdir: Path) -> Path:
    """A fresh copy of the template database in ``workdir`` (config written too)."""
    write_config(workdir)
    target = db_file(workdir)
    copy_database(ensure_template(), target)
    return target


# -- proteus ------------------------------------------------------------------------------


@contextlib.contextmanager
def proteus_session(server: TrytonServer) -> Iterator[Any]:
    """A proteus XML-RPC config logged in as admin (passed explicitly, never global)."""
    from proteus.config import XmlrpcConfig

    uid, token, _ = rpc(
        server.rpc_url, "common.db.login", [server.username, {"password": server.password}, "en"]
    )
    raw = f"{server.username}:{uid}:{token}".encode()
    auth = "Session " + base64.b64encode(raw).decode("ascii")
    config = XmlrpcConfig(server.rpc_url, headers=[("Authorization", auth)])
    try:
        yield config
    finally:
        with contextlib.suppress(Exception):
            config.server.common.db.logout()


def base_setup(config: Any) -> None:
    """Company (USD), a second warehouse WH2, parties and goods products SKU-001..003."""
    from proteus import Model, Wizard

    Currency = Model.get("currency.currency", config=config)
    Party = Model.get("party.party", config=config)
    User = Model.get("res.user", config=config)
    Group = Model.get("res.group", config=config)
    currency = Currency(name="U.S. Dollar", symbol="$", code="USD", rounding=Decimal("0.01"))
    currency.save()
    wizard = Wizard("company.company.config", config=config)
    wizard.execute("company")
    company_party = Party(name="Stocksync Test Co")
    company_party.save()
    wizard.form.party = company_party
    wizard.form.currency = currency
    wizard.execute("add")
    config._context = User.get_preferences(True, {})

    admin = User(config.context.get("user") or User.find([("login", "=", ADMIN_LOGIN)])[0].id)
    for group in Group.find(
        [("name", "in", ["Stock", "Stock Administration", "Stock Cancellation"])]
    ):
        if group not in admin.groups:
            admin.groups.append(group)
    admin.save()

    Party(name="Supplier").save()
    Party(name="Customer").save()

    Location = Model.get("stock.location", config=config)
    (wh,) = Location.find([("code", "=", "WH"), ("type", "=", "warehouse")])
    (wh2,) = Location.duplicate([wh], default={"name": "Warehouse 2", "code": "WH2"})
    for loc, code in (
        (wh2.input_location, "IN2"),
        (wh2.output_location, "OUT2"),
        (wh2.storage_location, "STO2"),
    ):
        loc.code = code
        loc.save()

    Uom = Model.get("product.uom", config=config)
    Template = Model.get("product.template", config=config)
    (unit,) = Uom.find([("name", "=", "Unit")])
    for i, sku in enumerate(SKUS, start=1):
        Template(
            name=f"Product {i}", code=sku, type="goods", default_uom=unit, list_price=Decimal(10)
        ).save()
    Template(name="Service", code="SRV-1", type="service", default_uom=unit).save()


# -- scenario steps -------------------------------------------------------------------


def _warehouse(config: Any, code: str) -> Any:
    from proteus import Model

    Location = Model.get("stock.location", config=config)
    (wh,) = Location.find([("code", "=", code), ("type", "=", "warehouse")])
    return wh


def _location(config: Any, type_: str) -> Any:
    from proteus import Model

    Location = Model.get("stock.location", config=config)
    return Location.find([("type", "=", type_), ("parent", "=", None)])[0]


def _product(config: Any, sku: str) -> Any:
    from proteus import Model

    (product,) = Model.get("product.product", config=config).find([("code", "=", sku)])
    return product


def _party(config: Any, name: str) -> Any:
    from proteus import Model

    (party,) = Model.get("party.party", config=config).find([("name", "=", name)])
    return party


def _company_currency(config: Any) -> Any:
    from proteus import Model

    (company,) = Model.get("company.company", config=config).find([])
    return company.currency


def _new_move(config: Any, sku: str, qty: int, src: Any, dst: Any, *, price: bool) -> Any:
    from proteus import Model

    product = _product(config, sku)
    move = Model.get("stock.move", config=config)()
    move.product = product
    move.unit = product.default_uom
    move.quantity = qty
    move.from_location = src
    move.to_location = dst
    if price:
        move.unit_price = Decimal(5)
        move.currency = _company_currency(config)
    return move


def receive(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Supplier shipment received and done into ``warehouse``; returns the shipment id."""
    from proteus import Model

    wh = _warehouse(config, warehouse)
    shipment = Model.get("stock.shipment.in", config=config)()
    shipment.supplier = _party(config, "Supplier")
    shipment.warehouse = wh
    for sku, qty in lines.items():
        move = _new_move(
            config, sku, qty, _location(config, "supplier"), wh.input_location, price=True
        )
        shipment.incoming_moves.append(move)
    shipment.save()
    shipment.click("receive")
    shipment.click("do")
    return int(shipment.id)


def supplier_return(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Goods sent back from ``warehouse``'s storage to the supplier, done."""
    from proteus import Model

    wh = _warehouse(config, warehouse)
    shipment = Model.get("stock.shipment.in.return", config=config)()
    shipment.supplier = _party(config, "Supplier")
    shipment.from_location = wh.storage_location
    shipment.to_location = _location(config, "supplier")
    for sku, qty in lines.items():
        move = _new_move(config, sku, qty, wh.storage_location, shipment.to_location, price=True)
        shipment.moves.append(move)
    shipment.save()
    shipment.click("wait")
    shipment.click("assign_force")
    shipment.click("do")
    return int(shipment.id)


def ship(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Customer shipment picked, packed and done from ``warehouse``."""
    from proteus import Model

    wh = _warehouse(config, warehouse)
    shipment = Model.get("stock.shipment.out", config=config)()
    shipment.customer = _party(config, "Customer")
    shipment.warehouse = wh
    for sku, qty in lines.items():
        move = _new_move(
            config, sku, qty, wh.output_location, _location(config, "customer"), price=True
        )
        shipment.outgoing_moves.append(move)
    shipment.save()
    shipment.click("wait")
    shipment.click("assign_force")
    shipment.click("pick")
    shipment.click("pack")
    shipment.click("do")
    return int(shipment.id)


def customer_return(config: Any, warehouse: str, lines: Mapping[str, int]) -> int:
    """Customer return received and done into ``warehouse``."""
    from proteus import Model

    wh = _warehouse(config, warehouse)
    shipment = Model.get("stock.shipment.out.return", config=config)()
    shipment.customer = _party(config, "Customer")
    shipment.warehouse = wh
    for sku, qty in lines.items():
        move = _new_move(
            config, sku, qty, _location(config, "customer"), wh.input_location, price=True
        )
        shipment.incoming_moves.append(move)
    shipment.save()
    shipment.click("receive")
    shipment.click("do")
    return int(shipment.id)


def transfer(config: Any, src: str, dst: str, lines: Mapping[str, int]) -> int:
    """Internal shipment between two warehouses' storage zones (through transit), done."""
    from proteus import Model

    from_wh, to_wh = _warehouse(config, src), _warehouse(config, dst)
    shipment = Model.get("stock.shipment.internal", config=config)()
    shipment.from_location = from_wh.storage_location
    shipment.to_location = to_wh.storage_location
    shipment.planned_date = dt.date.today()
    for sku, qty in lines.items():
        shipment.moves.append(
            _new_move(config, sku, qty, shipment.from_location, shipment.to_location, price=False)
        )
    shipment.save()
    shipment.click("wait")
    shipment.click("assign_force")
    if shipment.transit_location:
        shipment.click("pack")
        shipment.click("ship")
    shipment.click("do")
    return int(shipment.id)


def stocktake(config: Any, warehouse: str, deltas: Mapping[str, int]) -> int:
    """Inventory of ``warehouse``'s storage zone, counted ``expected + delta`` per SKU."""
    from proteus import Model

    wh = _warehouse(config, warehouse)
    inventory = Model.get("stock.inventory", config=config)()
    inventory.location = wh.storage_location
    inventory.save()
    inventory.click("complete_lines")
    for line in inventory.lines:
        if line.product.code in deltas:
            line.quantity = (line.expected_quantity or 0) + deltas[line.product.code]
    inventory.save()
    inventory.click("confirm")
    return int(inventory.id)


def cancel_shipment_in(config: Any, shipment_id: int) -> list[int]:
    """Cancel a done supplier shipment (needs Stock Cancellation); returns its move ids."""
    from proteus import Model

    shipment = Model.get("stock.shipment.in", config=config)(shipment_id)
    shipment.click("cancel")
    return [int(m.id) for m in shipment.moves]


def warehouse_quantities(config: Any) -> dict[tuple[str, str], Decimal]:
    """Tryton's own on-hand per (sku, warehouse code), non-zero only (goods products)."""
    from proteus import Model

    Product = Model.get("product.product", config=config)
    result: dict[tuple[str, str], Decimal] = {}
    for code in WAREHOUSES:
        wh = _warehouse(config, code)
        with config.set_context(locations=[wh.id]):
            for product in Product.find([("type", "=", "goods")]):
                qty = Decimal(str(product.quantity or 0))
                if qty:
                    result[(product.code, code)] = qty
    return result


def initial_scenario(config: Any) -> dict[str, int]:
    """Phase 1 documents: receipts into both warehouses, a shipment, a customer return,
    a supplier return, a transfer WH→WH2 and a stocktake with a difference."""
    return {
        "receipt": receive(config, "WH", {"SKU-001": 50, "SKU-002": 30}),
        "receipt2": receive(config, "WH2", {"SKU-001": 20}),
        "shipment": ship(config, "WH", {"SKU-001": 8}),
        "customer_return": customer_return(config, "WH", {"SKU-001": 2}),
        "supplier_return": supplier_return(config, "WH", {"SKU-002": 4}),
        "transfer": transfer(config, "WH", "WH2", {"SKU-002": 5}),
        "stocktake": stocktake(config, "WH", {"SKU-001": -3, "SKU-002": 1}),
    }

"""Serving the Salesforce emulator on a loopback socket, over HTTPS (reference §11.1).

simple-salesforce (and any client that hard-codes ``https://``) needs a real TLS
socket: ``Running`` makes a self-signed certificate (``emulator_tls``), writes it and
the connected app's JWT key into a temporary folder, serves the emulator from a
thread and removes the folder on ``stop``. ``emulator.start`` / ``emulator.serve``
are the public entry points.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from typing import Any

from connectors._emulator import LoopbackServer
from connectors.salesforce.emulator import SalesforceEmulator, build_emulator
from connectors.salesforce.emulator_tls import private_pem, self_signed


class Running:
    """An emulator served on loopback (``start``); stop it with ``stop()`` or ``with``."""

    def __init__(
        self,
        emulator: SalesforceEmulator,
        *,
        https: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        cert = self_signed(host=host)
        self.folder = cert.cert_path.parent
        self.emulator = emulator
        emulator.jwt_key_file = self.folder / "jwt_key.pem"
        emulator.jwt_key_file.write_bytes(private_pem(emulator.jwt_key))
        emulator.jwt_key_file.chmod(0o600)
        emulator.ca_cert = cert.cert_path if https else None
        self.ca_cert = emulator.ca_cert
        self.ssl_context = cert.client_context() if https else None
        context = cert.server_context() if https else None
        self.server = LoopbackServer(
            emulator, host, port, name="salesforce-emulator", ssl_context=context
        )
        self.url = self.server.url
        self.server.start()

    def connection_info(self) -> dict[str, Any]:
        return self.emulator.connection_info(self.url)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(host: str, port: int, scenario: str) -> None:
    stop = threading.Event()
    with Running(build_emulator(scenario), host=host, port=port) as running:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        print(json.dumps(running.connection_info()), flush=True)
        stop.wait()

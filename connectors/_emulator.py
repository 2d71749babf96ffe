"""Serving emulators: in-process through httpx, or on a loopback port for other clients.

Emulators are plain WSGI apps, so the same object serves Kingdee's own SDK (over
a real socket), our connectors in tests (``httpx.WSGITransport``), and respx
side effects (``handler``) where a test injects faults around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from sync.service.wsgi_server import ThreadedWsgiServer, WsgiApp

#: a WSGI app served on 127.0.0.1 (a free port by default) in a background thread
LoopbackServer = ThreadedWsgiServer


def transport_for(app: WsgiApp) -> httpx.WSGITransport:
    """An httpx transport that calls the emulator in-process (no socket)."""
    return httpx.WSGITransport(app=app)


def handler_for(app: WsgiApp) -> Callable[[httpx.Request], httpx.Response]:
    """A request → response function, usable as a respx side effect."""
    transport = httpx.WSGITransport(app=app)

    def handle(request: httpx.Request) -> httpx.Response:
        response = transport.handle_request(request)
        response.read()
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )

    return handle


class Emulator:
    """Base for emulators: a WSGI callable that also describes how to connect to it.

    ``stocksync emulator NAME`` builds one with ``build_emulator(scenario)``,
    serves it on loopback and prints ``connection_info(url)`` as one JSON line.
    """

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        raise NotImplementedError

    def connection_info(self, base_url: str) -> dict[str, Any]:
        raise NotImplementedError

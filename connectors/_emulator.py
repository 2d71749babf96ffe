"""Serving emulators: in-process through httpx, or on a loopback port for other clients.

Emulators are plain WSGI apps, so the same object serves Kingdee's own SDK (over
a real socket), our connectors in tests (``httpx.WSGITransport``), and respx
side effects (``handler``) where a test injects faults around it.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class LoopbackServer:
    """A WSGI app served on 127.0.0.1 in a background thread; a context manager."""

    def __init__(self, app: WsgiApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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

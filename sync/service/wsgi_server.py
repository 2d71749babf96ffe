"""A WSGI app on a socket, served by a daemon thread: ``/healthz`` and the emulators use it.

The standard library's ``wsgiref`` server with one thread per request (a slow
scrape or a held-open emulator call never blocks the next) and no access log
(the daemon logs in JSON lines; a request line on stderr would break them).
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class ThreadedWsgiServer:
    """Serves ``app`` on ``host:port`` from a daemon thread; a context manager.

    The socket is bound on construction (``OSError`` if the address is taken),
    so ``port`` is the bound one: 0 picks a free port. ``start`` begins serving,
    ``stop`` shuts down and closes the socket.
    """

    def __init__(
        self, app: WsgiApp, host: str = "127.0.0.1", port: int = 0, *, name: str = "wsgi"
    ) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedWsgiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ThreadedWsgiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

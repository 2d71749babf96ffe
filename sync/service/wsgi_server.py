"""A WSGI app on a socket, served by a daemon thread: ``/healthz`` and the emulators use it.

The standard library's ``wsgiref`` server with one thread per request (a slow
scrape or a held-open emulator call never blocks the next) and no access log
(the daemon logs in JSON lines; a request line on stderr would break them).
"""

from __future__ import annotations

import socketserver
import ssl
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

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS: the handshake runs here, in the request's own thread, so a slow or
        # broken client never holds up the accept loop
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)


class ThreadedWsgiServer:
    """Serves ``app`` on ``host:port`` from a daemon thread; a context manager.

    The socket is bound on construction (``OSError`` if the address is taken),
    so ``port`` is the bound one: 0 picks a free port. ``start`` begins serving,
    ``stop`` shuts down and closes the socket. With ``ssl_context`` it speaks
    HTTPS (``url`` then starts with ``https://``; the app sees ``wsgi.url_scheme``
    ``https``).
    """

    def __init__(
        self,
        app: WsgiApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "wsgi",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.scheme = "http"
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._server.base_environ["HTTPS"] = "on"
            self.scheme = "https"
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        """``http(s)://host:port`` of the bound socket."""
        return f"{self.scheme}://{self.host}:{self.port}"

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

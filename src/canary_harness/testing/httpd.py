"""A tiny HTTP server on a loopback port, served by a daemon thread: the base of the testing doubles.

``http.server`` with HTTP/1.1 keep-alive (so that a 400-request split probe reuses its connection) and a
handler function ``(method, path, headers, body) -> (status, headers, body)`` instead of a handler class.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from canary_harness.errors import CanaryError

Answer = tuple[int, Mapping[str, str], bytes]
Handler = Callable[[str, str, Mapping[str, str], bytes], Answer]


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client that keeps its connection open never blocks shutdown
    allow_reuse_address = True
    # socketserver's default backlog (5) drops connections in a burst (NGINX's shadow copies arrive beside
    # the users' requests, each on a fresh connection): a real server's backlog is in the hundreds.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()


class ThreadedHTTPServer:
    """Serves ``handler`` on ``host:port`` (0: a free port) from a daemon thread until ``close``."""

    def __init__(self, host: str, port: int, handler: Handler, *, error: type[CanaryError] = CanaryError) -> None:
        """Bind now: ``error`` (naming ``host:port``) if the port is taken, so nothing half-starts."""
        serve = handler

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, each keep-alive answer waits ~40 ms
            # for the client's delayed ACK (a 400-request probe took 18 s instead of under one).
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with server.connections_lock:
                    server.open_connections.add(self.connection)

            def finish(self) -> None:
                with server.connections_lock:
                    server.open_connections.discard(self.connection)
                super().finish()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = serve(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 (http.server's naming)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base)
                pass  # the doubles keep their own logs; stderr stays quiet in tests

        try:
            server = self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise error(f"port {host}:{port} is already in use ({exc.strerror})") from exc
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-http-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port (bounded: serve_forever polls every 50 ms), and cut the
        keep-alive connections still open, as a stopped process would. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5.0)
        self._server.server_close()
        with self._server.connections_lock:
            connections = list(self._server.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

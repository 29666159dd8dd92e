"""ASGI middleware: version header, request timing, request metrics and the per-request log line.

Written as plain ASGI (not BaseHTTPMiddleware) to keep the per-request cost low. It also turns an
unhandled exception into a JSON 500 that still carries the version header and is counted.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fragrance_ai.jsonlog import JsonLogger
from fragrance_ai.metrics import NO_MODE, ServiceMetrics

UNMATCHED_ROUTE = "<unmatched>"


class TelemetryMiddleware:
    """Adds ``X-App-Version`` (and ``X-LLM-Mode`` on requests with a mode), records ``http_request_*``
    metrics and logs a ``request`` event."""

    def __init__(self, app: ASGIApp, *, version: str, metrics: ServiceMetrics, logger: JsonLogger) -> None:
        self.app = app
        self.version = version
        self.metrics = metrics
        self.logger = logger
        self._header = version.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        response_started = False

        async def send_with_version(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = MutableHeaders(scope=message)
                headers.append("X-App-Version", self.version)
                if state.get("mode"):  # the LLM mode of the request, for proxies that group latency by it
                    headers.append("X-LLM-Mode", str(state["mode"]))
            await send(message)

        try:
            await self.app(scope, receive, send_with_version)
        except Exception as exc:
            self.logger.emit("unhandled_error", path=scope.get("path"), error=exc.__class__.__name__)
            if response_started:
                raise
            status = 500
            body = json.dumps({"detail": f"internal error ({exc.__class__.__name__})"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-app-version", self._header),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", UNMATCHED_ROUTE)
            mode = state.get("mode", NO_MODE)
            method = scope.get("method", "GET")
            self.metrics.observe_request(path, method, status, mode, seconds)
            self.logger.emit(
                "request",
                route=path,
                method=method,
                status=status,
                mode=mode,
                duration_ms=round(seconds * 1000.0, 3),
            )

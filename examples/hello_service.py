"""hello-service: a small shop API that is not fragrance-ai, to show the harness gating any HTTP service.

    python examples/hello_service.py --port 9000 --release v2

GET /health (200, no body to speak of), GET /items, POST /orders (201). Every answer carries
X-App-Version. No request metrics, no structured log: the harness reads NGINX's access log instead.
GET /metrics has one business counter, ``hello_orders_total{outcome="ok|failed"}`` (an order the shop
accepted but could not fulfil is answered 201 and counted failed: no 5xx shows it).
Faults for a bad release, from the environment: HELLO_ERROR_RATE (share of API answers that are 500),
HELLO_ERROR_AFTER (API answers served before the 500s begin, default 0: a release that passes its smoke and
fails under traffic), HELLO_DELAY_MS (added to every API answer), HELLO_ORDER_FAILURE_RATE (share of orders
counted failed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
from collections.abc import Awaitable, Callable

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest


def create_app(
    release: str, error_rate: float, delay_s: float, order_failure_rate: float = 0.0, error_after: int = 0
) -> FastAPI:
    """The API of one release, with its faults; the first ``error_after`` API answers are spared the 500s."""
    app = FastAPI(title="hello-service")
    registry = CollectorRegistry()
    orders = Counter("hello_orders", "Orders taken, by outcome", ["outcome"], registry=registry)
    for outcome in ("ok", "failed"):
        orders.labels(outcome)  # both series from the start: a ratio of two present counters
    order_ids = itertools.count(1)
    api_answers = itertools.count()  # one event loop: no lock needed
    items = [{"id": n, "name": name} for n, name in enumerate(("tea", "coffee", "cocoa"), start=1)]

    @app.middleware("http")
    async def version_and_faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path not in ("/health", "/metrics"):
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            # The random 500s can spare the first answers: the harness walks its smoke journey against the
            # canary before any traffic moves, and a 500 there ends the stage before the judge sees a request.
            if next(api_answers) >= error_after and random.random() < error_rate:
                response: Response = JSONResponse({"detail": "injected failure"}, status_code=500)
                response.headers["X-App-Version"] = release
                return response
        response = await call_next(request)
        response.headers["X-App-Version"] = release
        return response

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items")
    async def list_items() -> list[dict[str, object]]:
        return items

    @app.post("/orders", status_code=201)
    async def create_order(order: dict[str, object]) -> dict[str, object]:
        # The business failure the harness must see without a 5xx: accepted, answered 201, never fulfilled.
        orders.labels("failed" if random.random() < order_failure_rate else "ok").inc()
        return {"id": f"ord_{next(order_ids)}", "item": order.get("item"), "release": release}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--release", required=True, help="the version this instance reports")
    args = parser.parse_args()

    def fault(name: str, kind: type[float] | type[int] = float) -> float:
        raw = os.environ.get(name, "0")
        try:
            value = kind(raw)
        except ValueError:
            parser.error(f"{name}={raw!r} in the environment: not {'an integer' if kind is int else 'a number'}")
        if value < 0:
            parser.error(f"{name}={raw!r} in the environment: must not be negative")
        return value

    app = create_app(
        args.release,
        error_rate=fault("HELLO_ERROR_RATE"),
        delay_s=fault("HELLO_DELAY_MS") / 1000,
        order_failure_rate=fault("HELLO_ORDER_FAILURE_RATE"),
        error_after=int(fault("HELLO_ERROR_AFTER", int)),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

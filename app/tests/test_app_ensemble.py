"""Unit tests: the ensemble's handling of failing providers and of the latency and schema faults, and
the telemetry middleware's answer to an unhandled exception."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fragrance_ai.ensemble import AllProvidersFailed, BriefResult, Ensemble
from fragrance_ai.errors import ProviderError
from fragrance_ai.faults import FaultInjector, parse_faults
from fragrance_ai.jsonlog import JsonLogger
from fragrance_ai.metrics import ServiceMetrics
from fragrance_ai.middleware import TelemetryMiddleware
from fragrance_ai.providers.base import ProviderReply
from fragrance_ai.providers.simulated import SimulatedProvider
from fragrance_ai.schema import schema_errors


class Broken:
    """A provider that fails the way it is told to."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name = name
        self.error = error

    async def interpret(self, brief: str, mode: str) -> ProviderReply:
        raise self.error

    async def aclose(self) -> None:
        pass


class Slow(SimulatedProvider):
    """A simulated provider with a fixed delay."""

    def __init__(self, name: str, delay_s: float) -> None:
        super().__init__(name, seed=0, latency_scale=0.0, n_providers=1)
        self.delay_s = delay_s

    def latency_s(self, mode: str) -> float:
        return self.delay_s


def brief(ensemble: Ensemble, mode: str = "fast") -> BriefResult:
    return asyncio.run(ensemble.brief("fresh citrus", mode))


def healthy_injector() -> FaultInjector:
    return FaultInjector(parse_faults(""), seed=0)


def test_failing_providers_are_left_out_of_the_vote() -> None:
    ok = SimulatedProvider("ok", seed=0, latency_scale=0.0, n_providers=3)
    ensemble = Ensemble(
        [Broken("down", ProviderError("down: HTTP 503")), ok, Broken("buggy", KeyError("secret-ish detail"))],
        [1.0, 1.0, 1.0],
        healthy_injector(),
    )
    result = brief(ensemble)
    assert result.models == ["ok"] and result.schema_ok
    assert result.provider_errors == ["down: HTTP 503", "buggy: unexpected KeyError"]


def test_no_usable_provider_is_an_error_naming_each_failure() -> None:
    ensemble = Ensemble([Broken("a", ProviderError("a: timed out"))], [1.0], healthy_injector())
    with pytest.raises(AllProvidersFailed, match="a: timed out"):
        brief(ensemble)


def test_latency_faults_stretch_the_ensemble_time() -> None:
    provider = Slow("s", 0.05)
    slow = Ensemble([provider], [1.0], FaultInjector(parse_faults("latency_factor.balanced=3"), seed=0))
    started = time.perf_counter()
    result = brief(slow, "balanced")
    assert 0.14 <= time.perf_counter() - started and result.elapsed_ms >= 145
    added = Ensemble([Slow("s", 0.0)], [1.0], FaultInjector(parse_faults("latency_add_ms=120"), seed=0))
    assert brief(added, "creative").elapsed_ms >= 120
    assert brief(Ensemble([Slow("s", 0.0)], [1.0], healthy_injector())).elapsed_ms < 100


def test_schema_fault_breaks_the_served_document_but_not_the_vote() -> None:
    provider = SimulatedProvider("m", seed=0, latency_scale=0.0, n_providers=1)
    ensemble = Ensemble([provider], [1.0], FaultInjector(parse_faults("schema_rate=1"), seed=0))
    result = brief(ensemble)
    assert not result.schema_ok and result.schema_errors and schema_errors(result.document)
    assert schema_errors(result.vote) == []


def test_middleware_turns_an_unhandled_exception_into_a_counted_json_500() -> None:
    async def explode(_request: Request) -> JSONResponse:
        raise RuntimeError("boom")

    stream = io.StringIO()
    metrics = ServiceMetrics("v9")
    # Placed as in the service: a user middleware, inside the framework's own error middleware.
    logger = JsonLogger("v9", stream=stream)
    telemetry = Middleware(TelemetryMiddleware, version="v9", metrics=metrics, logger=logger)
    app = Starlette(routes=[Route("/explode", explode)], middleware=[telemetry])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/explode")

    response = asyncio.run(call())
    assert response.status_code == 500 and response.headers["x-app-version"] == "v9"
    assert response.json() == {"detail": "internal error (RuntimeError)"}
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["unhandled_error", "request"]
    assert events[1]["status"] == 500 and events[1]["route"] == "/explode"
    assert "boom" not in stream.getvalue()  # exception text stays out of the logs
    exposition = metrics.render().decode()
    assert (
        'http_requests_total{app_version="v9",method="GET",route="/explode",status="500"} 1.0' in exposition
    )

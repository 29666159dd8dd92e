"""``FakeBackend``: a Backend whose services are tiny in-thread HTTP servers (``--backend fake``).

A fake service answers what the harness asks of fragrance-ai: ``/health`` (status and version, with
``X-App-Version`` on every answer), the smoke journey (``/dna/create``, ``/evolve/options``,
``/evolve/feedback``) and ``/metrics``. Its metrics are synthetic and programmable through the service's
environment (``--canary-env`` / ``--production-env``), so that a stage's judge sees a chosen outcome
without load or real models:

``FAKE_RPS`` (default 100)         API requests per second the counters grow by, from the service's start
``FAKE_ERROR_RATE`` (default 0)    share of them answered 5xx (``FAKE_ERROR_RATE=0.3``: the 5xx check FAILs)
``FAKE_LATENCY_S`` (default 0.2)   the duration every request is recorded with, in every LLM mode
``FAKE_START_ERROR``               start fails with this text in the service log (nothing is left running)

Services live in this process (a registry keyed by URL), so any ``FakeBackend()`` (``backend_for("fake")``)
stops and checks what another started. Never a default: only for the plugin's lifecycle tests and for
people writing a new backend or router (docs/extending.md).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from canary_harness.deploy.health import health, reported_version
from canary_harness.deploy.pids import tail
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError, ConfigError
from canary_harness.testing.httpd import Answer, ThreadedHTTPServer

NAME = "fake"
MODES = ("fast", "balanced", "creative")
# Latency bucket edges: they include the judge's default p95 thresholds (2.5, 3.2, 4.5 s).
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 3.2, 4.5, 10.0, math.inf)


def _number(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = env.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise ConfigError(f"{key}={raw!r} (fake service environment): must be a number in {low:g}..{high:g}")
    return value


@dataclass(frozen=True)
class Behaviour:
    """What a fake service's synthetic metrics show (see the module docstring)."""

    rps: float = 100.0
    error_rate: float = 0.0
    latency_s: float = 0.2

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Behaviour:
        """Read ``FAKE_*`` from a service environment; ConfigError naming a bad value."""
        return cls(
            rps=_number(env, "FAKE_RPS", 100.0, 0.0, 1e6),
            error_rate=_number(env, "FAKE_ERROR_RATE", 0.0, 0.0, 1.0),
            latency_s=_number(env, "FAKE_LATENCY_S", 0.2, 0.0, 1e3),
        )


class FakeService:
    """One fake fragrance-ai version on ``spec.host:spec.port``, served from a daemon thread."""

    def __init__(self, spec: ServiceSpec, behaviour: Behaviour) -> None:
        """Bind and serve at once; BackendError if the port is taken."""
        self.spec, self.behaviour = spec, behaviour
        self.started = time.monotonic()
        self._ids = itertools.count(1)
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadedHTTPServer(spec.host, spec.port, self._handle, error=BackendError)

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self.server.url

    def served(self, path: str) -> int:
        """How many real requests ``path`` answered (the synthetic traffic is not counted here)."""
        with self._lock:
            return self._served.get(path, 0)

    def _handle(self, method: str, path: str, _headers: Mapping[str, str], _body: bytes) -> Answer:
        path = path.split("?", 1)[0]
        with self._lock:
            self._served[path] = self._served.get(path, 0) + 1
        version = self.spec.version
        headers = {"X-App-Version": version}
        if path == "/metrics" and method == "GET":
            return 200, {**headers, "Content-Type": "text/plain; version=0.0.4"}, self.exposition().encode()
        routes: dict[tuple[str, str], Callable[[int], dict[str, object]]] = {
            ("GET", "/health"): lambda _n: {"status": "healthy", "version": version},
            ("POST", "/dna/create"): lambda n: {"dna_id": f"dna_{n}"},
            ("POST", "/evolve/options"): lambda n: {
                "experiment_id": f"exp_{n}",
                "options": [{"id": f"opt_{n}_{i}"} for i in range(3)],
            },
            ("POST", "/evolve/feedback"): lambda _n: {"status": "accepted"},
        }
        route = routes.get((method, path))
        if route is None:
            return 404, headers, b'{"detail": "not found"}'
        return 200, {**headers, "Content-Type": "application/json"}, json.dumps(route(next(self._ids))).encode()

    def exposition(self, now: float | None = None) -> str:
        """The synthetic counters at ``now`` (monotonic), in fragrance-ai's exposition format."""
        b, v = self.behaviour, self.spec.version
        elapsed = (time.monotonic() if now is None else now) - self.started
        per_route = math.floor(b.rps * elapsed / 3)  # three API routes share the traffic
        failed = math.floor(per_route * b.error_rate)  # the same share of every route
        lines = ["# TYPE http_requests_total counter"]
        for route in ("/dna/create", "/evolve/options", "/evolve/feedback"):
            lines.append(f'http_requests_total{{route="{route}",status="200",app_version="{v}"}} {per_route - failed}')
            if failed:
                lines.append(f'http_requests_total{{route="{route}",status="500",app_version="{v}"}} {failed}')
        lines.append("# TYPE http_request_duration_seconds histogram")
        per_mode = per_route // len(MODES)
        for mode in MODES:
            for edge in BUCKETS:
                le = "+Inf" if math.isinf(edge) else f"{edge:g}"
                count = per_mode if b.latency_s <= edge else 0
                lines.append(
                    f'http_request_duration_seconds_bucket{{mode="{mode}",le="{le}",app_version="{v}"}} {count}'
                )
        lines += [
            "# TYPE llm_brief_total counter",
            f'llm_brief_total{{app_version="{v}"}} {per_route}',
            "# TYPE llm_brief_schema_failures_total counter",
            f'llm_brief_schema_failures_total{{app_version="{v}"}} 0',
        ]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.close()


_SERVICES: dict[str, FakeService] = {}
_REGISTRY_LOCK = threading.Lock()


def fake_service(url: str) -> FakeService | None:
    """The fake service running at ``url`` in this process, if any (tests read its counters)."""
    with _REGISTRY_LOCK:
        return _SERVICES.get(url.rstrip("/"))


class FakeBackend:
    """Backend over ``FakeService``: starts in milliseconds, no process, no container."""

    name = NAME

    def __init__(self, on_spawn: Callable[[ServiceHandle], None] | None = None) -> None:
        """``on_spawn`` is called with the handle as soon as the service serves (before the health check)."""
        self.on_spawn = on_spawn

    def start(self, spec: ServiceSpec, *, timeout: float = 30.0) -> ServiceHandle:
        """Serve ``spec`` and check its ``/health``; BackendError with the service log's last lines otherwise."""
        log_path = Path(spec.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        what = f"{spec.role} {spec.version}"
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"fake service {what} on {spec.url}, environment keys {sorted(spec.env)}\n")
            if "FAKE_START_ERROR" in spec.env:
                log.write(f"start failed: {spec.env['FAKE_START_ERROR']}\n")
        if "FAKE_START_ERROR" in spec.env:
            raise BackendError(f"{what} did not become healthy on {spec.url}:\n{tail(log_path)}")
        try:
            service = FakeService(spec, Behaviour.from_env(spec.env))
        except BackendError as exc:
            raise BackendError(f"{what}: {exc}") from exc
        handle = ServiceHandle(
            role=spec.role, version=spec.version, url=service.url, pid=None, log_path=log_path, backend=NAME
        )
        with _REGISTRY_LOCK:
            _SERVICES[handle.url] = service
        if self.on_spawn is not None:
            self.on_spawn(handle)
        if health(handle.url, timeout=min(timeout, 5.0)) is None:
            self.stop(handle)
            raise BackendError(f"{what} did not become healthy on {handle.url}:\n{tail(log_path)}")
        return handle

    def stop(self, handle: ServiceHandle, *, timeout: float = 10.0) -> None:
        """Stop serving ``handle``. Idempotent."""
        with _REGISTRY_LOCK:
            service = _SERVICES.pop(handle.url.rstrip("/"), None)
        if service is not None:
            service.close()

    def is_running(self, handle: ServiceHandle) -> bool:
        """True while this process serves ``handle``."""
        return fake_service(handle.url) is not None

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if it runs and ``/health`` answers healthy."""
        return self.is_running(handle) and health(handle.url) is not None

    def version(self, handle: ServiceHandle) -> str | None:
        """The version ``/health`` reports while the service answers healthy, else None."""
        return reported_version(handle.url) if self.is_running(handle) else None

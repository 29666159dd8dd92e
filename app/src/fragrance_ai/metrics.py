"""Prometheus metrics of the service, in their own registry; every series carries ``app_version``.

The label is ``app_version`` rather than ``version`` because scrape configs attach a target label
``version="canary"|"production"``. A worker's metrics also carry ``component`` (``worker-rl``,
``worker-llm``) so that its series stay apart from the API's when both are summed into one arm.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from fragrance_ai import MODES
from fragrance_ai.ppo import UpdateStats

# Edges include the release thresholds 2.5, 3.2 and 4.5 s so exceedances are exact bucket reads.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    3.2,
    3.5,
    4.0,
    4.5,
    5.0,
    6.0,
    7.5,
    10.0,
    15.0,
    30.0,
    float("inf"),
)
NO_MODE = "none"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """The service's metric families, bound to one running version."""

    def __init__(self, version: str, component: str | None = None) -> None:
        self.version = version
        self.component = component
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The label values every series ends with: (version,) for the API, (version, component) for a worker.
        self.tail: tuple[str, ...] = (version,) if component is None else (version, component)
        tail_names = ["app_version"] if component is None else ["app_version", "component"]
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration, by route template",
            ["route", "method", "status", "mode", *tail_names],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered",
            ["route", "method", "status", *tail_names],
            registry=r,
        )
        self.briefs = Counter("llm_brief", "llm_brief documents produced", ["mode", *tail_names], registry=r)
        self.brief_duration = Histogram(
            "llm_brief_duration_seconds",
            "LLM ensemble time per brief",
            ["mode", *tail_names],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.schema_failures = Counter(
            "llm_brief_schema_failures",
            "llm_brief documents failing the schema",
            ["mode", *tail_names],
            registry=r,
        )
        self.rl_updates = Counter("rl_update", "PPO updates run", ["algo", *tail_names], registry=r)
        self.rl_loss_summary = Summary(
            "rl_update_loss", "Reported loss per PPO update", tail_names, registry=r
        )
        self.rl_loss = Gauge("rl_training_loss", "Loss of the last PPO update", tail_names, registry=r)
        self.rl_reward = Gauge("rl_reward", "Mean reward of the last PPO batch", tail_names, registry=r)
        self.rl_entropy = Gauge("rl_entropy", "Policy entropy in the last PPO update", tail_names, registry=r)
        self.rl_clip_frac = Gauge(
            "rl_clip_frac", "Clip fraction of the last PPO update", tail_names, registry=r
        )
        self._preinitialise()

    def _preinitialise(self) -> None:
        # Series exist at 0 before traffic, so rates and deltas have a baseline from the first scrape.
        v = self.tail
        for mode in MODES:
            self.briefs.labels(mode, *v)
            self.brief_duration.labels(mode, *v)
            self.schema_failures.labels(mode, *v)
        self.rl_updates.labels("PPO", *v)
        self.rl_loss_summary.labels(*v)
        for gauge in (self.rl_loss, self.rl_reward, self.rl_entropy, self.rl_clip_frac):
            gauge.labels(*v)
        for route in ("/health", "/metrics"):
            self.requests.labels(route, "GET", "200", *v)
        if self.component is not None:
            return  # a worker serves no API route
        for route in ("/dna/create", "/evolve/options", "/evolve/feedback"):
            for status in ("200", "500"):
                self.requests.labels(route, "POST", status, *v)
        for route in ("/dna/create", "/evolve/options"):
            for mode in MODES:
                self.request_duration.labels(route, "POST", "200", mode, *v)

    def observe_request(self, route: str, method: str, status: int, mode: str, seconds: float) -> None:
        """One answered HTTP request."""
        code = str(status)
        self.request_duration.labels(route, method, code, mode, *self.tail).observe(seconds)
        self.requests.labels(route, method, code, *self.tail).inc()

    def observe_brief(self, mode: str, seconds: float, schema_ok: bool) -> None:
        """One llm_brief document."""
        self.briefs.labels(mode, *self.tail).inc()
        self.brief_duration.labels(mode, *self.tail).observe(seconds)
        if not schema_ok:
            self.schema_failures.labels(mode, *self.tail).inc()

    def observe_update(self, stats: UpdateStats) -> None:
        """One PPO update."""
        v = self.tail
        self.rl_updates.labels("PPO", *v).inc()
        self.rl_loss_summary.labels(*v).observe(stats.loss)
        self.rl_loss.labels(*v).set(stats.loss)
        self.rl_reward.labels(*v).set(stats.reward)
        self.rl_entropy.labels(*v).set(stats.entropy)
        self.rl_clip_frac.labels(*v).set(stats.clip_frac)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

"""A load run's figures: totals, per request name, per served version and per mode.

Built from locust's ``--json-file`` entries plus the locustfile's ``--canary-stats-file`` tally (or the
same two documents from the builtin engine), so both engines give the same LoadStats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from canary_harness.config import MODES
from canary_harness.errors import LoadError
from canary_harness.loadgen.tally import Histogram, percentile_ms


@dataclass(frozen=True)
class EndpointStats:
    """Requests, failures, latency percentiles (ms) and rate of one group of requests."""

    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float
    avg_ms: float = 0.0
    max_ms: float = 0.0

    @classmethod
    def from_histogram(cls, hist: Histogram, duration_s: float) -> EndpointStats:
        """Figures of one histogram over a run of ``duration_s`` seconds."""
        count = hist.requests
        return cls(
            requests=count,
            failures=hist.failures,
            p50_ms=float(percentile_ms(hist.response_times, count, 0.50)),
            p95_ms=float(percentile_ms(hist.response_times, count, 0.95)),
            p99_ms=float(percentile_ms(hist.response_times, count, 0.99)),
            rps=count / duration_s if duration_s > 0 else 0.0,
            avg_ms=hist.total_ms / count if count else 0.0,
            max_ms=hist.max_ms,
        )


@dataclass(frozen=True)
class LoadStats:
    """What one load run sent and how it was answered.

    by_name: per request name (route and mode, e.g. ``/evolve/options [creative]``).
    by_version: requests per version that served them (X-Served-Version, else X-App-Version;
        ``unknown`` when neither came back); version_stats has their failures and percentiles.
    by_mode: journeys started per LLM mode (each journey sends up to 3 requests in its mode).
    target_rps: the constant-rate target, None in closed-loop mode; rps is the rate achieved.
    errors: failure reasons ("name: reason") and how often each occurred.
    by_worker: requests per locust worker in distributed mode (empty for a single process).
    """

    engine: str
    duration_s: float
    requests: int
    failures: int
    rps: float
    by_name: Mapping[str, EndpointStats]
    by_version: Mapping[str, int]
    by_mode: Mapping[str, int]
    total: EndpointStats | None = None
    version_stats: Mapping[str, EndpointStats] = field(default_factory=dict)
    target_rps: float | None = None
    users: int = 0
    workers: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    client: str = ""
    by_worker: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, engine: str) -> LoadStats:
        """A run that sent nothing (never started, or stopped before it began)."""
        return cls(
            engine=engine, duration_s=0.0, requests=0, failures=0, rps=0.0, by_name={}, by_version={}, by_mode={}
        )

    @property
    def failure_ratio(self) -> float:
        """Failures / requests (0 when nothing was sent)."""
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data for the stage record."""
        data = asdict(self)
        data["failure_ratio"] = self.failure_ratio
        return data

    def format_table(self) -> str:
        """A fixed-width text table for the stage report."""
        target = f" of {self.target_rps:g} target" if self.target_rps else ""
        engine = f"{self.engine}/{self.client}" if self.client else self.engine
        lines = [
            f"load ({engine}, {self.users} users, {self.workers} workers): {self.requests} requests, "
            f"{self.failures} failures ({self.failure_ratio:.2%}) in {self.duration_s:.1f}s, "
            f"{self.rps:.1f} req/s{target}",
            f"  {'name':<34} {'reqs':>7} {'fails':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'req/s':>7}",
        ]
        rows = sorted(self.by_name.items())
        if self.total is not None:
            rows.append(("total", self.total))
        for name, item in rows:
            lines.append(
                f"  {name:<34} {item.requests:>7} {item.failures:>6} {item.p50_ms:>7.0f} "
                f"{item.p95_ms:>7.0f} {item.p99_ms:>7.0f} {item.rps:>7.1f}"
            )
        if self.version_stats:
            lines.append(
                "  by served version: "
                + ", ".join(
                    f"{version} {item.requests} reqs / {item.failures} fails / p95 {item.p95_ms:.0f} ms"
                    for version, item in sorted(self.version_stats.items())
                )
            )
        if self.by_worker:
            lines.append("  by worker: " + ", ".join(f"{w} {n}" for w, n in self.by_worker.items()))
        if self.by_mode:
            lines.append("  journeys by mode: " + ", ".join(f"{m} {n}" for m, n in self.by_mode.items()))
        for reason, count in sorted(self.errors.items(), key=lambda item: -item[1])[:5]:
            lines.append(f"  failure x{count}: {reason}")
        return "\n".join(lines)


def build_stats(engine: str, entries: Iterable[Mapping[str, Any]], tally: Mapping[str, Any]) -> LoadStats:
    """LoadStats from locust-style JSON entries and the tally document; LoadError if they are malformed."""
    try:
        return _build(engine, list(entries), tally)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LoadError(f"load stats are malformed ({type(exc).__name__}: {exc})") from exc


def _build(engine: str, entries: list[Mapping[str, Any]], tally: Mapping[str, Any]) -> LoadStats:
    started, stopped = tally.get("started"), tally.get("stopped")
    if started is not None and stopped is not None:
        duration = max(0.0, float(stopped) - float(started))
    else:  # no tally timestamps: span of the entries themselves
        starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
        ends = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
        duration = max(ends) - min(starts) if starts and ends else 0.0
    by_hist: dict[str, Histogram] = {}
    total = Histogram()
    for entry in entries:
        hist = by_hist.setdefault(str(entry["name"]), Histogram())
        part = {
            "requests": int(entry["num_requests"]),
            "failures": int(entry["num_failures"]),
            "total_ms": float(entry.get("total_response_time") or 0.0),
            "max_ms": float(entry.get("max_response_time") or 0.0),
            "response_times": entry.get("response_times") or {},
        }
        hist.merge(part)
        total.merge(part)
    versions = {str(name): _histogram(data) for name, data in dict(tally.get("versions", {})).items()}
    return LoadStats(
        engine=engine,
        duration_s=duration,
        requests=total.requests,
        failures=total.failures,
        rps=total.requests / duration if duration > 0 else 0.0,
        by_name={name: EndpointStats.from_histogram(h, duration) for name, h in sorted(by_hist.items())},
        by_version={name: hist.requests for name, hist in sorted(versions.items())},
        by_mode=_in_mode_order(dict(tally.get("modes", {}))),
        total=EndpointStats.from_histogram(total, duration),
        version_stats={v: EndpointStats.from_histogram(h, duration) for v, h in sorted(versions.items())},
        target_rps=float(tally["target_rps"]) if tally.get("target_rps") else None,
        users=int(tally.get("users") or 0),
        workers=int(tally.get("workers") or 0),
        errors={str(reason): int(count) for reason, count in dict(tally.get("errors", {})).items()},
        client=str(tally.get("client") or ""),
        by_worker={str(k): int(v) for k, v in sorted(dict(tally.get("sources", {})).items())},
    )


def _in_mode_order(modes: Mapping[str, Any]) -> dict[str, int]:
    ordered = [mode for mode in MODES if mode in modes] + sorted(set(modes) - set(MODES))
    return {mode: int(modes[mode]) for mode in ordered}


def _histogram(data: Mapping[str, Any]) -> Histogram:
    hist = Histogram()
    hist.merge(data)
    return hist

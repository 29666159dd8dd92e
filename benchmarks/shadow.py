"""The shadow stage (stage 0) measured: how soon it catches a bad release, and what mirroring costs users.

    python benchmarks/shadow.py [--runs 2000] [--seed 7] [--live-requests 300] [--rounds 3] [--no-live] [--json FILE]

Simulation (the real judge engine, vectorised over ``--runs`` canaries, the protocol of judge_sim.py):
users send 50 req/s, Poisson, 1 s ticks, a 900 s window; production answers 0.2 % 5xx. The bad canary
answers 3 % 5xx from t = 0. Stage 1 % routes 1 % of users to it; the shadow stage (share 100 % and 25 %)
copies that share of production's requests to it (each copy independently, as NGINX's split_clients does)
while users stay on production. Figures: median and p90 seconds to FAIL, the share caught within the
window, and for healthy canaries the share wrongly FAILed (the mirror-coverage check included).

Live (``--no-live`` skips it): a private stack (NGINX + fragrance-ai production v0.1.0 and canary v0.2.0 on
free loopback ports, no simulated latency, stopped by PID at the end). Users are ``--clients`` keep-alive
clients sending POST /dna/create one after another through NGINX; the p95 of what they measure, with the
shadow off and at 100 %, in alternating rounds, for a healthy canary, for one that sleeps 10 s per request
(``FRAGRANCE_FAULTS=latency_add_ms=10000``) and for a stopped canary (every copy refused at once: what the
mirroring costs NGINX itself, without a canary competing with production for the machine's CPUs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from canary_harness.config import StackSettings
from canary_harness.judge.eprocess_engine import EProcessEngine
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.tick import Tick
from canary_harness.ports import free_ports
from canary_harness.stack import LocalStack
from canary_harness.traffic.nginx import NginxTrafficController

RPS = 50.0
WINDOW_S = 900
BASE_ERROR = 0.002
BAD_ERROR = 0.03
SETTINGS = JudgeSettings(max_duration_s=float(WINDOW_S))
FAST_ENV = {"FRAGRANCE_LATENCY_SCALE": "0"}
SLOW_FAULT = "latency_add_ms=10000"
BRIEF = {"brief": "a fresh citrus scent for summer mornings", "mode": "fast"}


def simulate(stage: str, error_c: float, runs: int, rng: np.random.Generator) -> np.ndarray:
    """Seconds to FAIL per run (inf: not within the window), for ``stage`` "1" (1 % of users) or "shadow:S"
    (S % of production's requests copied). Only the 5xx stream is simulated: it is what the 3 % canary breaks,
    and the split (or coverage) check must stay quiet on the same traffic. Runs are not stopped by a PASS, so
    a healthy canary's false FAILs are counted over the whole window (a bound on the real stage's)."""
    share = float(stage.split(":")[1]) / 100 if stage.startswith("shadow") else 0.0
    weight = 0.0 if share else float(stage) / 100
    engine = EProcessEngine(SETTINGS, shape=(runs,), shadow_share=share)
    fail = np.full(runs, np.inf)
    for t in range(1, WINDOW_S + 1):
        n_p = rng.poisson(RPS * (1 - weight), runs).astype(float)
        # A copy per production request with probability ``share``; at stage 1 % the canary's own users.
        n_c = rng.binomial(n_p.astype(int), share).astype(float) if share else rng.poisson(RPS * weight, runs) * 1.0
        e_c = rng.binomial(n_c.astype(int), error_c).astype(float)
        e_p = rng.binomial(n_p.astype(int), BASE_ERROR).astype(float)
        engine.update(
            Tick(
                weight=weight,
                canary_requests=n_c,
                production_requests=n_p,
                canary_units=n_c,
                production_units=n_p,
                canary_errors=e_c,
                production_errors=e_p,
            ),
            float(t),
        )
        fail = np.where(np.isinf(fail) & engine.decide(float(t)).stage_fail, t, fail)
        if not np.isinf(fail).any():
            break
    return fail


def _fmt(values: np.ndarray, q: float) -> str:
    finite = values[np.isfinite(values)]
    if finite.size < q * values.size:
        return "never"
    return f"{np.quantile(np.where(np.isfinite(values), values, np.inf), q):.0f} s"


def sim_figures(runs: int, seed: int) -> dict[str, Any]:
    """Detection of the 3 % 5xx canary and false FAILs of healthy canaries, per stage."""
    rng = np.random.default_rng(seed)
    figures: dict[str, Any] = {}
    for stage in ("1", "shadow:100", "shadow:25"):
        bad_fail = simulate(stage, BAD_ERROR, runs, rng)
        healthy_fail = simulate(stage, BASE_ERROR, runs, rng)
        figures[stage] = {
            "bad_median_s": float(np.median(bad_fail)),
            "bad_p90_s": float(np.quantile(bad_fail, 0.9)),
            "bad_caught_in_window": float(np.isfinite(bad_fail).mean()),
            "healthy_false_fail": float(np.isfinite(healthy_fail).mean()),
            "text": (
                f"median {_fmt(bad_fail, 0.5)}, p90 {_fmt(bad_fail, 0.9)}, caught {np.isfinite(bad_fail).mean():.1%}; "
                f"healthy FAILed {np.isfinite(healthy_fail).mean():.2%}"
            ),
        }
    return figures


def user_latencies(base_url: str, count: int, clients: int) -> list[float]:
    """Seconds per answer as keep-alive users measure them (each client one request after another)."""

    def one_client(n: int) -> list[float]:
        seconds = []
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            for _ in range(n):
                started = time.perf_counter()
                response = client.post("/dna/create", json=BRIEF)
                seconds.append(time.perf_counter() - started)
                if response.status_code != 200 or response.headers.get("X-Upstream") != "production":
                    raise SystemExit(f"user request answered {response.status_code} by {response.headers}")
        return seconds

    with ThreadPoolExecutor(clients) as pool:
        return [value for batch in pool.map(one_client, [count // clients] * clients) for value in batch]


def p95(values: list[float]) -> float:
    """The 95th percentile."""
    return statistics.quantiles(values, n=20)[-1]


def live_figures(requests: int, rounds: int, clients: int) -> dict[str, Any]:
    """Production's p95 seen by users with the shadow off and on, for a healthy and a 10 s canary."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp:
        nginx_port, production_port, canary_port = free_ports(3)
        settings = StackSettings(
            nginx_port=nginx_port, production_port=production_port, canary_port=canary_port,
            run_dir=Path(tmp) / "run", production_version="v0.1.0", canary_version="v0.2.0",
            production_env=FAST_ENV, canary_env=FAST_ENV,
        )  # fmt: skip
        stack = LocalStack(settings)
        stack.up(with_canary=True)
        try:
            traffic = stack.traffic()
            assert isinstance(traffic, NginxTrafficController)
            cases: tuple[tuple[str, dict[str, str] | None], ...] = (
                ("healthy", FAST_ENV),
                ("sleeps 10 s", {**FAST_ENV, "FRAGRANCE_FAULTS": SLOW_FAULT}),
                ("stopped", None),  # copies refused at once: NGINX's own cost, without the canary's CPU
            )
            for canary, env in cases:
                if canary != "healthy":
                    traffic.set_canary_weight(0, reason="benchmark: replace the canary")
                    if env is None:
                        stack.stop_canary()
                    else:
                        stack.start_canary("v0.2.0", env)
                user_latencies(traffic.base_url, 4 * clients, clients)  # warm-up
                off: list[float] = []
                on: list[float] = []
                for _ in range(rounds):  # alternating rounds: drift of the machine hits both sides alike
                    traffic.set_canary_weight(0, reason="benchmark: shadow off")
                    off += user_latencies(traffic.base_url, requests, clients)
                    traffic.set_shadow(100, reason="benchmark: shadow on")
                    on += user_latencies(traffic.base_url, requests, clients)
                figures[canary] = {
                    "p95_off_ms": p95(off) * 1000,
                    "p95_on_ms": p95(on) * 1000,
                    "median_off_ms": statistics.median(off) * 1000,
                    "median_on_ms": statistics.median(on) * 1000,
                    "requests": len(off) + len(on),
                }
            traffic.set_canary_weight(0, reason="benchmark: done")
        finally:
            stack.down()
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the simulation (and the live part) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--live-requests", type=int, default=300, help="user requests per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--no-live", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    started = time.monotonic()
    results: dict[str, Any] = {"sim": sim_figures(args.runs, args.seed)}
    print(f"shadow benchmark, simulation ({args.runs} runs per row, users {RPS:g} req/s, 3 % 5xx canary):")
    for stage, row in results["sim"].items():
        label = "stage 1 %" if stage == "1" else f"shadow {stage.split(':')[1]} %"
        print(f"  {label:<12} time to FAIL {row['text']}")
    if not args.no_live:
        results["live"] = live_figures(args.live_requests, args.rounds, args.clients)
        print(f"live: production seen by {args.clients} keep-alive users, POST /dna/create through NGINX")
        for canary, row in results["live"].items():
            print(
                f"  canary {canary:<12} p95 {row['p95_off_ms']:6.1f} ms without mirroring, {row['p95_on_ms']:6.1f} ms "
                f"with (median {row['median_off_ms']:.1f} / {row['median_on_ms']:.1f} ms, {row['requests']} requests)"
            )
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

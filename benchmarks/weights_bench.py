"""Weight changes and throughput through the real NGINX stack; prints its figures.

    python benchmarks/weights_bench.py [--changes 20] [--requests 4000] [--concurrency 16] [--json FILE]

Brings up a private stack (NGINX + fragrance-ai production v0.1.0 + canary v0.2.0, no simulated latency)
on free loopback ports in a temporary directory, measures, and stops everything by PID.

Figures:
- weight-change latency, alternating 0 % <-> 100 % so the new split is unambiguous:
  * api: ``set_canary_weight`` from the call until it returns (render, nginx -t, replace, reload,
    confirmed that only new workers accept and they serve the new generation);
  * first: from the call until a fresh-connection request is first served by the new side;
  * cli: ``canary weights N`` as a subprocess, start to exit (includes interpreter start-up);
  after each change 20 fresh-connection requests must all land on the new side (else the run fails).
- requests/s through NGINX at canary 0 %, 5 % and 100 % (asyncio keep-alive clients), and directly
  to production without NGINX for comparison.
- reloads under load: requests, errors and keep-alive connections closed by a reload (retried once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from canary_harness.config import StackSettings
from canary_harness.ports import free_ports
from canary_harness.stack import LocalStack
from canary_harness.traffic.nginx import NginxTrafficController
from canary_harness.waiting import wait_until

FAST_ENV = {"FRAGRANCE_LATENCY_SCALE": "0"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def served_by(client: httpx.Client, url: str) -> str:
    """Which upstream serves one fresh-connection request."""
    response = client.get(url, headers={"Connection": "close"}, timeout=5)
    return response.headers.get("X-Upstream", "")


def _watch(url: str, expected: str, seen_at: list[float], stop: threading.Event) -> None:
    """Send fresh-connection requests until one is served by ``expected``; note when."""
    with httpx.Client() as client:
        while not stop.is_set():
            if served_by(client, url) == expected:
                seen_at.append(time.perf_counter())
                return


def weight_changes(traffic: NginxTrafficController, changes: int) -> dict[str, list[float]]:
    """Alternate 0/100 ``changes`` times: call latency and time until the first request on the new side."""
    url = traffic.base_url + "/health"
    api: list[float] = []
    first: list[float] = []
    for n in range(changes):
        weight = 100 if traffic.canary_weight() == 0 else 0
        expected = "canary" if weight == 100 else "production"
        seen_at: list[float] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(url, expected, seen_at, stop), daemon=True)
        watcher.start()
        started = time.perf_counter()
        traffic.set_canary_weight(weight, reason=f"benchmark change {n + 1}")
        api.append(time.perf_counter() - started)
        wait_until(lambda: bool(seen_at), 10, 0.001, "a request on the new side")  # noqa: B023
        stop.set()
        watcher.join(5)
        first.append(seen_at[0] - started)
        with httpx.Client() as client:
            wrong = [who for who in (served_by(client, url) for _ in range(20)) if who != expected]
        if wrong:
            raise SystemExit(f"after the change to {weight}% requests were still served by {wrong}")
    return {"api": api, "first": first}


def cli_changes(run_dir: Path, changes: int) -> list[float]:
    """``canary weights N`` as a user runs it, alternating 0/100."""
    durations: list[float] = []
    code = "import sys; from canary_harness.cli import main; sys.exit(main())"
    for n in range(changes):
        weight = "100" if n % 2 == 0 else "0"
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", code, "weights", weight, "--run-dir", str(run_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        durations.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"canary weights {weight} failed: {result.stderr}")
    return durations


async def _throughput(url: str, requests: int, concurrency: int, time_limit: float) -> dict[str, float]:
    sent = 0
    failed = 0
    deadline = time.perf_counter() + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal sent, failed
            while sent < requests and time.perf_counter() < deadline:
                sent += 1  # counted before awaiting, so exactly ``requests`` are sent
                try:
                    response = await client.get(url)
                    failed += response.status_code != 200
                except httpx.HTTPError:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": sent, "failed": failed, "seconds": elapsed, "rps": sent / elapsed}


def throughput(url: str, requests: int, concurrency: int) -> dict[str, float]:
    """Requests/s of ``requests`` GETs by ``concurrency`` keep-alive clients (at most 60 s)."""
    return asyncio.run(_throughput(url, requests, concurrency, 60.0))


def reloads_under_load(traffic: NginxTrafficController, reloads: int) -> dict[str, int]:
    """Four keep-alive clients while NGINX reloads ``reloads`` times; a closed idle connection is retried."""
    url = traffic.base_url + "/health"
    stop = threading.Event()
    counts = {"requests": 0, "errors": 0, "closed_by_reload": 0}
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            for _ in range(100_000):
                if stop.is_set():
                    return
                for attempt in range(2):
                    try:
                        ok = http.get(url).status_code == 200
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        with lock:
                            counts["closed_by_reload"] += 1
                            counts["errors"] += attempt  # a failed retry is an error
                        continue
                    with lock:
                        counts["requests"] += 1
                        counts["errors"] += 0 if ok else 1
                    break

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(reloads):
            traffic.set_canary_weight(50 if n % 2 == 0 else 0, reason="benchmark reload under load")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    return counts


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    results: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="weights-bench-") as tmp:
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
            latencies = weight_changes(traffic, args.changes)
            latencies["cli"] = cli_changes(stack.run_dir, args.changes)
            for name, values in latencies.items():
                results[f"change_{name}_ms"] = {
                    "median": round(statistics.median(values) * 1000, 1),
                    "p95": round(percentile(values, 95) * 1000, 1),
                    "max": round(max(values) * 1000, 1),
                    "n": len(values),
                }
            for weight in (0, 5, 100):
                traffic.set_canary_weight(weight, reason="benchmark throughput")
                results[f"rps_nginx_{weight}pct"] = throughput(
                    traffic.base_url + "/health", args.requests, args.concurrency
                )
            results["rps_direct_production"] = throughput(
                f"http://127.0.0.1:{production_port}/health", args.requests, args.concurrency
            )
            results["reloads_under_load"] = {"reloads": 10, **reloads_under_load(traffic, 10)}
        finally:
            stack.down()

    print(f"weights_bench ({results['cpus']} CPUs, loopback, fragrance-ai with FRAGRANCE_LATENCY_SCALE=0)")
    for name in ("api", "first", "cli"):
        figure = results[f"change_{name}_ms"]
        print(
            f"  weight change {name:<5}  median {figure['median']:7.1f} ms   p95 {figure['p95']:7.1f} ms"
            f"   max {figure['max']:7.1f} ms   (n={figure['n']})"
        )
    for key in ("rps_nginx_0pct", "rps_nginx_5pct", "rps_nginx_100pct", "rps_direct_production"):
        figure = results[key]
        print(
            f"  {key:<22} {figure['rps']:8.0f} req/s  ({figure['requests']} requests, "
            f"{figure['failed']} failed, {args.concurrency} clients)"
        )
    load = results["reloads_under_load"]
    print(
        f"  reloads under load     {load['reloads']} reloads, {load['requests']} requests answered, "
        f"{load['errors']} errors, {load['closed_by_reload']} idle keep-alive connections closed (retried)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

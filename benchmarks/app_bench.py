"""Throughput, latency and memory of fragrance-ai at latency scale 0 on this machine.

Starts the service on a free loopback port, then
1. drives each endpoint alone with a bounded number of concurrent keep-alive connections and prints
   requests/s and client-side p50/p95 per endpoint;
2. sends a mixed workload (create / options / feedback / health) and prints the process RSS after
   10, 25, 50, 75 and 100 % of ``--requests`` (default 10 000): with the state in bounded LRU maps
   (``--store-size`` entries each, default 1 000 so that eviction starts within the run) it must level off.

Every phase is bounded in requests and in time. Run: ``python benchmarks/app_bench.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from canary_harness.ports import free_port

Call = tuple[str, str, dict[str, Any] | None]
MODES = ("fast", "balanced", "creative")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Send one request; (status, parsed JSON or raw text)."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if payload is not None else {}
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        is_json = response.getheader("content-type", "").startswith("application/json")
        return response.status, json.loads(raw) if is_json else raw


def drive(
    port: int, make_call: Callable[[int], Call], total: int, concurrency: int, deadline_s: float
) -> tuple[float, dict[str, list[float]], int]:
    """Send ``total`` calls (``make_call(i)``) over ``concurrency`` connections, stopping at the deadline.

    Returns (elapsed seconds, latencies in ms per path, non-2xx count)."""
    counter = iter(range(total))
    lock = threading.Lock()
    latencies: dict[str, list[float]] = {}
    failures = [0]
    stop_at = time.monotonic() + deadline_s

    def worker() -> None:
        client = Client(port)
        while time.monotonic() < stop_at:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            method, path, body = make_call(index)
            started = time.perf_counter()
            status, _ = client.call(method, path, body)
            elapsed = (time.perf_counter() - started) * 1000.0
            with lock:
                latencies.setdefault(path, []).append(elapsed)
                failures[0] += status >= 300

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline_s + 30)
    return time.monotonic() - began, latencies, failures[0]


def _offset(make_call: Callable[[int], Call], base: int, index: int) -> Call:
    return make_call(base + index)


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="mixed-phase requests (default 10000)")
    parser.add_argument("--per-endpoint", type=int, default=1_500, help="requests per endpoint phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--store-size", type=int, default=1_000, help="FRAGRANCE_STORE_SIZE for the run")
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="seconds per phase at most")
    args = parser.parse_args()

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="app-bench-"))
    env = {**os.environ, "FRAGRANCE_LATENCY_SCALE": "0", "FRAGRANCE_STORE_SIZE": str(args.store_size)}
    env.pop("FRAGRANCE_FAULTS", None)
    command = [sys.executable, "-m", "fragrance_ai", "--port", str(port), "--version", "bench"]
    with (workdir / "stdout.jsonl").open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if Client(port).call("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("fragrance-ai did not come up; see " + str(workdir / "stdout.jsonl"))
            time.sleep(0.05)

        dna_ids: list[str] = []
        experiments: list[dict[str, Any]] = []

        def seed() -> None:
            # Fresh ids before each phase: earlier phases may have evicted older ones (bounded stores).
            setup = Client(port)  # a new connection: an idle one is closed by the server's keep-alive
            dna_ids[:] = [
                setup.call("POST", "/dna/create", {"brief": f"seed {i} citrus"})[1]["dna_id"] for i in range(20)
            ]
            experiments[:] = [
                setup.call("POST", "/evolve/options", {"dna_id": d, "brief": "woodier"})[1] for d in dna_ids
            ]

        rng = random.Random(0)

        def create(i: int) -> Call:
            return "POST", "/dna/create", {"brief": f"brief {i} warm amber rose", "mode": MODES[i % 3]}

        def options(i: int) -> Call:
            return (
                "POST",
                "/evolve/options",
                {"dna_id": dna_ids[i % len(dna_ids)], "brief": "spicier", "mode": MODES[i % 3]},
            )

        def feedback(i: int) -> Call:
            experiment = experiments[i % len(experiments)]
            return (
                "POST",
                "/evolve/feedback",
                {
                    "experiment_id": experiment["experiment_id"],
                    "chosen_id": experiment["options"][i % 3]["id"],
                    "rating": rng.randint(1, 5),
                },
            )

        def health(_i: int) -> Call:
            return "GET", "/health", None

        print(
            f"fragrance-ai at latency scale 0, {args.concurrency} concurrent connections, "
            f"{os.cpu_count()} CPUs (client and server share them)"
        )
        print(f"{'endpoint':<20} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'non-2xx':>8}")
        for name, make in (
            ("/health", health),
            ("/dna/create", create),
            ("/evolve/options", options),
            ("/evolve/feedback", feedback),
        ):
            seed()
            elapsed, latencies, bad = drive(port, make, args.per_endpoint, args.concurrency, args.phase_timeout)
            values = latencies.get(name, [])
            print(
                f"{name:<20} {len(values):>8} {len(values) / elapsed:>8.0f} {quantile(values, 0.5):>8.2f} "
                f"{quantile(values, 0.95):>8.2f} {bad:>8}"
            )

        # Mixed phase: a fresh experiment per options call keeps the stores filling up.
        def mixed(i: int) -> Call:
            return (create, options, feedback, create, options, feedback, health)[i % 7](i)

        print(f"\nmixed workload, store size {args.store_size} per map; RSS of the service process:")
        print(f"{'after requests':>15} {'RSS MiB':>9} {'req/s':>8}")
        seed()
        print(f"{0:>15} {rss_mb(process.pid):>9.1f}")
        done = 0
        for fraction in (0.1, 0.25, 0.5, 0.75, 1.0):
            target = round(fraction * args.requests) - done
            if target <= 0:
                break
            elapsed, latencies, bad = drive(
                port, partial(_offset, mixed, done), target, args.concurrency, args.phase_timeout
            )
            sent = sum(len(v) for v in latencies.values())
            done += sent
            print(
                f"{done:>15} {rss_mb(process.pid):>9.1f} {sent / elapsed:>8.0f}" + (f"  ({bad} non-2xx)" if bad else "")
            )
        return 0
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


if __name__ == "__main__":
    sys.exit(main())

"""Both arms read at one instant through a real Prometheus: how exact, and what it costs per tick.

    python benchmarks/prometheus_read.py [--reads 40] [--canary-targets 3] [--interval 1.0]

Starts small ``/metrics`` servers on free loopback ports (production: one target; the canary: its API
and ``--canary-targets - 1`` workers, as a stage with workers has them), each counting requests at its
own rate, so the true count of an arm at any instant is known: the sum of rate × time over its targets.
The real ``prometheus`` binary scrapes them every ``--interval`` seconds; each target has its own scrape
offset, as on any installation. Then ``--reads`` times, one tick apart, the stage's reading of both arms
(``PrometheusSource.snapshots``) is compared with the truth at the instant it reports, beside the reading
of each arm as of its last scrapes before that instant (a plain PromQL sum, no interpolation).

Printed: the reading's cost per tick (milliseconds, queries), and the error of the canary's share of the
requests counted since the first read, in percentage points, for both readings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from canary_harness.metrics.prometheus import PrometheusSource
from canary_harness.metrics.prometheus_api import single_value
from canary_harness.metrics.prometheus_server import LocalPrometheus
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.ports import free_ports

PRODUCTION_RPS = 50.0
CANARY_API_RPS = 50.0
WORKER_RPS = 7.0  # a worker's own counted work (its queue jobs), summed into the arm like the API's


def exposition(rate: float, version: str) -> bytes:
    """A counter that grows at ``rate`` per second of wall-clock time, read now."""
    count = rate * time.time()
    series = f'route="/api",method="GET",status="200",app_version="{version}"'
    return (f"# TYPE http_requests_total counter\nhttp_requests_total{{{series}}} {count:.3f}\n").encode()


@contextmanager
def counting_server(port: int, rate: float, version: str) -> Iterator[None]:
    """A ``/metrics`` endpoint on 127.0.0.1:port; stopped on exit."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = exposition(rate, version)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class CountingClient(httpx.Client):
    """An httpx client that counts the queries it sends."""

    sent = 0

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        self.sent += 1
        return super().send(request, **kwargs)


def plain_requests(source: PrometheusSource, role: str, at: float) -> float:
    """The arm's requests as the plain PromQL sum at ``at``: each target as of its last scrape before it."""
    promql = source.render("requests", role)
    return single_value(source.query(promql, at), promql) or 0.0


def share(canary: float, production: float) -> float:
    return 100.0 * canary / (canary + production)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=40)
    parser.add_argument("--canary-targets", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.reads < 2 or args.canary_targets < 1 or not 0.1 <= args.interval <= 15:
        parser.error("--reads >= 2, --canary-targets >= 1, --interval within 0.1..15 s")
    rates = {"production": [PRODUCTION_RPS], "canary": [CANARY_API_RPS] + [WORKER_RPS] * (args.canary_targets - 1)}
    ports = iter(free_ports(sum(len(r) for r in rates.values())))
    targets = {role: [f"127.0.0.1:{next(ports)}" for _ in role_rates] for role, role_rates in rates.items()}
    with ExitStack() as stack:
        for role, addresses in targets.items():
            for address, rate in zip(addresses, rates[role], strict=True):
                stack.enter_context(counting_server(int(address.rsplit(":", 1)[1]), rate, role))
        server = stack.enter_context(LocalPrometheus(targets, scrape_interval_s=args.interval))
        server.wait_for_targets_up(30)
        client = stack.enter_context(CountingClient(timeout=10))
        source = PrometheusSource(server.url, client=client)
        time.sleep(2 * args.interval)  # a benchmark's settling time: two scrapes of every target behind it
        roles = ("canary", "production")
        costs_ms, queries, aligned, plain = [], [], [], []
        first: dict[str, MetricsSnapshot] | None = None
        first_plain: dict[str, float] | None = None
        for _ in range(args.reads):
            sent, began = client.sent, time.perf_counter()
            read = source.snapshots(roles)
            costs_ms.append(1000 * (time.perf_counter() - began))
            queries.append(client.sent - sent)
            at = read["canary"].taken_at
            as_summed = {role: plain_requests(source, role, at) for role in roles}
            if first is None or first_plain is None:
                first, first_plain, first_at = read, as_summed, at
            else:
                truth = share(*(sum(rates[role]) * (at - first_at) for role in roles))
                aligned.append(share(*(read[r].requests - first[r].requests for r in roles)) - truth)
                plain.append(share(*(as_summed[r] - first_plain[r] for r in roles)) - truth)
            time.sleep(args.interval)
    print(
        f"Prometheus reading of both arms: canary {args.canary_targets} target(s), production 1, "
        f"scrape interval {args.interval:g} s, {args.reads} reads"
    )
    print(f"  cost per tick: median {statistics.median(costs_ms):.1f} ms (max {max(costs_ms):.1f}), "
          f"{statistics.median(queries):g} queries")  # fmt: skip
    for name, errors in (("aligned (per target)", aligned), ("plain sum at the instant", plain)):
        worst = max(abs(e) for e in errors)
        print(
            f"  canary share error, {name}: median {statistics.median(map(abs, errors)):.2f} pp, worst {worst:.2f} pp"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

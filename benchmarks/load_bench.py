"""Load-generator figures on this machine: the request rate the profiles sustain (locust HttpUser,
locust FastHttpUser, the builtin engine) and how closely constant-rate mode hits its target.

    python benchmarks/load_bench.py                 # through NGINX when the nginx binary exists
    python benchmarks/load_bench.py --direct        # straight to one service instance
    python benchmarks/load_bench.py --seconds 5     # shorter runs

Starts two fragrance-ai instances (LLM latency scale 0, so the figures are about the load path, not
the simulated models) on free loopback ports and, unless --direct, an NGINX in front of them with the
harness's version headers. Everything started here is stopped by PID before the script exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from canary_harness.loadgen import LoadRun, LoadSettings, LoadStats
from canary_harness.loadgen.locust_engine import free_port
from canary_harness.waiting import wait_until

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp_body;
    proxy_temp_path {dir}/tmp_proxy;
    fastcgi_temp_path {dir}/tmp_fastcgi;
    uwsgi_temp_path {dir}/tmp_uwsgi;
    scgi_temp_path {dir}/tmp_scgi;
    # Keep each journey on one instance (the service keeps DNAs and experiments in memory); requests
    # without the header are spread per request.
    map $http_x_journey_id $route_key {{
        "" $request_id;
        default $http_x_journey_id;
    }}
    upstream fragrance {{
        hash $route_key consistent;
        {servers}
        keepalive 64;
    }}
    map $upstream_addr $served_version {{
        {versions}
        default unknown;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fragrance;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Served-Version $served_version always;
        }}
    }}
}}
"""


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200

    wait_until(ready, 30, 0.05, f"{what} at {url}", ignore=(httpx.HTTPError,))


@contextmanager
def service(workdir: Path, version: str) -> Iterator[str]:
    """One fragrance-ai instance; yields its URL."""
    port = free_port()
    env = {**os.environ, "FRAGRANCE_LATENCY_SCALE": "0"}
    with (workdir / f"service-{version}.log").open("wb") as log:
        argv = ["fragrance-ai", "--host", "127.0.0.1", "--port", str(port), "--version", version]
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, proc, f"fragrance-ai {version}")
            yield url
        finally:
            _stop(proc)


@contextmanager
def nginx(workdir: Path, upstreams: dict[str, str]) -> Iterator[str]:
    """A throwaway NGINX in front of ``upstreams`` (version → URL) adding X-Served-Version; yields its URL."""
    port = free_port()
    addresses = {version: url.removeprefix("http://") for version, url in upstreams.items()}
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=workdir,
            port=port,
            servers="\n        ".join(f"server {address};" for address in addresses.values()),
            versions="\n        ".join(f'"{address}" {version};' for version, address in addresses.items()),
        )
    )
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, "nginx")
        yield url
    finally:
        _stop(proc, signal.SIGQUIT)  # graceful: finish in-flight requests


def measure(url: str, seconds: float, settings: LoadSettings, stats_dir: Path) -> LoadStats:
    """One bounded run that ends by itself; its stats."""
    with LoadRun(url, seconds, settings, stats_dir) as run:
        wait_until(lambda: not run.running(), seconds + 60, 0.2, "the benchmark run to end")
    assert run.stats is not None
    return run.stats


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct", action="store_true", help="no NGINX: load goes straight to one instance")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--users", type=int, default=40, help="simulated users of the throughput runs")
    parser.add_argument("--rates", default="10,50,100,200,400", help="constant-rate targets to check (req/s)")
    args = parser.parse_args(argv)
    if shutil.which("fragrance-ai") is None:
        print("fragrance-ai is not installed: pip install -e app", file=sys.stderr)
        return 2
    through_nginx = not args.direct and shutil.which("nginx") is not None
    rates = [float(item) for item in args.rates.split(",") if item.strip()]

    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        production = stack.enter_context(service(workdir, "v1.0.0"))
        if through_nginx:
            canary = stack.enter_context(service(workdir, "v1.1.0"))
            target = stack.enter_context(nginx(workdir, {"v1.0.0": production, "v1.1.0": canary}))
            path = "through NGINX 1 worker -> 2 fragrance-ai instances"
        else:
            target, path = production, "direct to 1 fragrance-ai instance"
        print(f"load_bench: {os.cpu_count()} cores, {path}, LLM latency scale 0")

        print(f"\n== sustained rate, closed loop, {args.users} users, {args.seconds:g} s per run ==")
        print(
            f"{'engine/client':<16} {'profile':<8} {'req/s':>8} {'requests':>9} {'fails':>6} "
            f"{'p50 ms':>7} {'p95 ms':>7}  versions"
        )
        cases = [
            ("locust", "http", "journey"),
            ("locust", "fast", "journey"),
            ("builtin", "fast", "journey"),
            ("locust", "fast", "light"),
        ]
        for engine, client, profile in cases:
            settings = LoadSettings(
                users=args.users,
                spawn_rate=max(10.0, args.users * 2.0),
                engine=engine,
                client=client,
                profile=profile,
                # light users pace themselves at 1 probe/s unless a total rate is set
                rate_rps=None if profile == "journey" else 5000,
            )
            stats = measure(target, args.seconds, settings, workdir / f"{engine}-{client}-{profile}")
            total = stats.total
            label = f"{engine}/{stats.client}"
            print(
                f"{label:<16} {profile:<8} {stats.rps:>8.0f} {stats.requests:>9} {stats.failures:>6} "
                f"{(total.p50_ms if total else 0):>7.0f} {(total.p95_ms if total else 0):>7.0f}  "
                + ", ".join(f"{v}={n}" for v, n in stats.by_version.items())
            )

        print("\n== constant-rate accuracy (locust FastHttpUser, journey, 20 users, 8 s) ==")
        print(f"{'target':>8} {'achieved':>9} {'error':>7} {'requests':>9}")
        for rate in rates:
            settings = LoadSettings(users=20, spawn_rate=40, rate_rps=rate, engine="locust")
            stats = measure(target, 8, settings, workdir / f"rate-{rate:g}")
            error = 100 * (stats.rps - rate) / rate
            print(f"{rate:>8.0f} {stats.rps:>9.1f} {error:>+6.1f}% {stats.requests:>9}")
        started = time.monotonic()
        settings = LoadSettings(users=20, spawn_rate=40, rate_rps=100, workers=2, engine="locust")
        stats = measure(target, 8, settings, workdir / "rate-distributed")
        print(
            f"{100:>8.0f} {stats.rps:>9.1f} {100 * (stats.rps - 100) / 100:>+6.1f}% {stats.requests:>9}"
            f"   (master + 2 workers; wall {time.monotonic() - started:.1f} s for an 8 s run)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-to-healthy and stop times of the service per backend (process, docker), median of N.

For each backend, starts fragrance-ai ``--version`` (default v0.2.0) N times (default 5) on a free
loopback port through the harness's own ``Backend.start`` (which returns once ``/health`` reports the
version) and stops it with ``Backend.stop`` (SIGTERM; for docker also the removal of the container), and
prints the median, min and max of both. A backend that cannot run here (no Docker engine, image not
built) is reported and skipped. Everything started is stopped, also on Ctrl-C.

Run: ``python benchmarks/backend_bench.py [--runs N] [--version V] [--backends process,docker]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from canary_harness.deploy.factory import backend_for
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.errors import CanaryError
from canary_harness.ports import free_port


def measure(name: str, version: str, runs: int, work: Path) -> tuple[list[float], list[float]]:
    """``runs`` start-to-healthy and stop durations in seconds for backend ``name``."""
    backend = backend_for(name)
    starts: list[float] = []
    stops: list[float] = []
    for index in range(runs):
        spec = ServiceSpec(
            role="canary",
            version=version,
            port=free_port(),
            env={"FRAGRANCE_LATENCY_SCALE": "0"},
            log_path=work / name / f"run{index}" / "canary.log",
            run_dir=work / name / f"run{index}",
        )
        began = time.perf_counter()
        handle = backend.start(spec, timeout=60)
        starts.append(time.perf_counter() - began)
        try:
            began = time.perf_counter()
            backend.stop(handle, timeout=10)
            stops.append(time.perf_counter() - began)
        finally:
            backend.stop(handle, timeout=10)  # idempotent: only does something if the timed stop was interrupted
    return starts, stops


def row(label: str, values: list[float]) -> str:
    """``label  median  (min-max)`` in seconds."""
    return f"{label:<24} median {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    """Measure every asked backend and print its figures; exit 1 if none could run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--version", default="v0.2.0")
    parser.add_argument("--backends", default="process,docker")
    args = parser.parse_args()
    measured = 0
    with tempfile.TemporaryDirectory(prefix="backend-bench-") as tmp:
        for name in args.backends.split(","):
            try:
                starts, stops = measure(name, args.version, args.runs, Path(tmp))
            except CanaryError as exc:
                print(f"{name}: skipped: {exc}".splitlines()[0])
                continue
            measured += 1
            print(f"{name} ({args.runs} runs of {args.version})")
            print("  " + row("start -> healthy", starts))
            print("  " + row("stop (+ remove)", stops))
    return 0 if measured else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Where the time of a stage goes, beyond its observation window; prints the per-phase table.

    python benchmarks/stage_overhead.py [--window 20] [--runs 3] [--stage 5] [--latency-scale 0.05] [--bare]
                                        [--json FILE]

Brings up a private stack (NGINX + fragrance-ai production v0.1.0 + canary v0.2.0) on free loopback
ports in a temporary directory with ``canary stack up``, runs one stage to warm it (the canary is then
running, as in a rollout's later stages), then ``--runs`` stages of ``pytest --canary-version v0.2.0
--stage N --observation-period W`` that reuse it, with the Allure results ``canary rollout`` asks each
stage for (``--bare``: without), and stops everything by PID (``canary stack down``).

Each stage session loads this file as a pytest plugin (``-p stage_overhead``): it wraps the stage's
phases and pytest's own hooks and writes a time mark at each boundary into a file, so the phases are
measured inside the real session, not estimated from outside. Phases:

- pytest start-up: interpreter, plugins, options, collection (launch until the stage begins);
- start: the stack and the running canary found (or restarted) and checked;
- preflight: the smoke journey against the canary;
- weight change: set the weight, read it back from NGINX, journal it;
- split probe: the 400 requests through NGINX that must land on the canary within the binomial bounds;
- observation set-up: plan, metrics source, baselines, load processes started;
- window: the tick loop (the observation period itself: not overhead);
- load stop: locust (or the builtin engine) stopped and its stats read;
- verdict and record: tables printed, the record kept;
- release checks: the tests of canary_tests/;
- teardown: session finish (no rollback on a pass), unconfigure, interpreter exit.

Also printed, not counted as overhead: "load start delay", the seconds of the window that pass before
the first load request reaches NGINX (locust imports and spawns its users meanwhile), to about a second
(NGINX logs whole seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from canary_harness.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
MARKS_ENV = "CANARY_BENCH_MARKS"  # file the plugin appends its time marks to (JSON lines)
CANARY = [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())"]

PHASES: tuple[tuple[str, str, str], ...] = (
    # (name, from mark, to mark)
    ("pytest start-up", "launch", "stage:begin"),
    ("start (stack, running canary)", "stage:begin", "start:end"),
    ("preflight", "start:end", "preflight:end"),
    ("weight change", "preflight:end", "probe:begin"),
    ("split probe", "probe:begin", "probe:end"),
    ("observation set-up", "probe:end", "window:begin"),
    ("window", "window:begin", "window:end"),
    ("load stop", "window:end", "loadstop:end"),
    ("verdict and record", "loadstop:end", "stage:end"),
    ("release checks", "stage:end", "checks:end"),
    ("teardown", "checks:end", "exit"),
)


# --------------------------------------------------------------------------- the plugin (in the stage)
def _mark(name: str) -> None:
    path = os.environ.get(MARKS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"name": name, "t": time.time()}) + "\n")


def _timed(owner: Any, attribute: str, begin: str | None, end: str) -> None:
    original: Callable[..., Any] = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if begin:
            _mark(begin)
        try:
            return original(*args, **kwargs)
        finally:
            _mark(end)

    setattr(owner, attribute, wrapper)


def pytest_configure(config: Any) -> None:
    """Wrap the stage's phases (this module is loaded with ``-p stage_overhead`` by the benchmark only)."""
    if not os.environ.get(MARKS_ENV):
        return
    from canary_harness.pytest_plugin import session

    stage = session.StageSession
    _timed(stage, "run", "stage:begin", "stage:end")
    _timed(session, "start_services", None, "start:end")
    _timed(stage, "_preflight", None, "preflight:end")
    _timed(session, "probe_split", "probe:begin", "probe:end")
    _timed(stage, "_tick_loop", "window:begin", "window:end")
    _timed(session, "stop_all", None, "loadstop:end")


def pytest_unconfigure(config: Any) -> None:
    """The last mark inside the session; the benchmark adds the process exit."""
    _mark("unconfigure")


def pytest_runtestloop(session: Any) -> Iterator[None]:
    """Marks the end of the release checks (the stage itself runs inside the canary plugin's loop)."""
    yield
    _mark("checks:end")


pytest_runtestloop.hookwrapper = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the benchmark


def environ(run_dir: Path, latency_scale: str) -> dict[str, str]:
    """The stage's environment: free ports, a private run directory, the service's latency scale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARY_", "PYTEST_", "FRAGRANCE_"))}
    nginx, production, canary = free_ports(3)
    env.update(
        CANARY_NGINX_PORT=str(nginx),
        CANARY_PRODUCTION_PORT=str(production),
        CANARY_CANARY_PORT=str(canary),
        CANARY_RUN_DIR=str(run_dir),
        FRAGRANCE_LATENCY_SCALE=latency_scale,
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH", "")])),
    )
    return env


def first_load_request(run_dir: Path, after: float) -> float | None:
    """Unix time of the first load request (not a /health probe) NGINX logged after ``after``."""
    log = run_dir / "nginx" / "logs" / "access.jsonl"
    if not log.exists():
        return None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            # $time_iso8601: whole seconds, so the delay is known to about a second.
            at = dt.datetime.fromisoformat(str(entry["time"])).timestamp()
        except (ValueError, TypeError, KeyError):
            continue
        if at > after and "/health" not in str(entry.get("uri", "")):
            return at
    return None


def run_stage(env: dict[str, str], stage: int, window: float, marks: Path, extra: list[str]) -> dict[str, float]:
    """One stage session; the seconds of each phase (and the total)."""
    marks.unlink(missing_ok=True)
    env = {**env, MARKS_ENV: str(marks)}
    argv = [sys.executable, "-m", "pytest", "-p", "stage_overhead", "-p", "no:cacheprovider", "-q"]
    argv += ["--canary-version", "v0.2.0", "--stage", str(stage), "--observation-period", f"{window:g}", *extra]
    launch = time.time()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=window + 300)
    ended = time.time()
    if result.returncode != 0:
        raise SystemExit(f"stage session exited {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}")
    times = {"launch": launch, "exit": ended}
    for line in marks.read_text(encoding="utf-8").splitlines():
        mark = json.loads(line)
        times.setdefault(mark["name"], mark["t"])  # the first of each (a stage runs each phase once)
    missing = [m for _, a, b in PHASES for m in (a, b) if m not in times]
    if missing:
        raise SystemExit(f"marks missing from the stage session: {missing}")
    phases = {name: times[b] - times[a] for name, a, b in PHASES}
    phases["total"] = ended - launch
    first = first_load_request(Path(env["CANARY_RUN_DIR"]), times["window:begin"])
    phases["load start delay (in the window)"] = (first - times["window:begin"]) if first else float("nan")
    return phases


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=20.0, help="observation period of each stage, s")
    parser.add_argument("--runs", type=int, default=3, help="stages measured after the warm-up stage")
    parser.add_argument("--stage", type=int, default=5, help="canary weight of the stages, percent")
    parser.add_argument("--latency-scale", default="0.05", help="FRAGRANCE_LATENCY_SCALE of the services")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="run the stage without the Allure results `canary rollout` asks every stage for",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="stage-overhead-") as scratch:
        run_dir = Path(scratch) / "run"
        env = environ(run_dir, args.latency_scale)
        marks = Path(scratch) / "marks.jsonl"
        # As `canary rollout` runs each stage: Allure results (and their plots) into the run directory.
        extra = [] if args.bare else [f"--alluredir={run_dir / 'allure-results'}", "--clean-alluredir"]
        try:
            subprocess.run(CANARY + ["stack", "up", "--canary-version", "v0.2.0"], env=env, check=True, cwd=REPO,
                           capture_output=True, timeout=120)  # fmt: skip
            first = run_stage(env, args.stage, args.window, marks, extra)  # warm-up: same canary from now on
            runs = [run_stage(env, args.stage, args.window, marks, extra) for _ in range(args.runs)]
        finally:
            subprocess.run(CANARY + ["stack", "down"], env=env, cwd=REPO, capture_output=True, timeout=120)

    names = [name for name, _, _ in PHASES] + ["total", "load start delay (in the window)"]
    medians = {name: statistics.median(run[name] for run in runs) for name in names}
    overhead = [run["total"] - run["window"] for run in runs]
    print(f"Stage overhead: stage {args.stage} %, window {args.window:g} s, latency scale {args.latency_scale}, "
          f"canary reused, {'bare' if args.bare else 'with Allure results as canary rollout runs it'}; "
          f"median of {args.runs} runs (warm-up stage: {first['total']:.1f} s total)")  # fmt: skip
    print(f"  {'phase':<34} {'median s':>9} {'min':>7} {'max':>7}")
    for name in names:
        values = [run[name] for run in runs]
        print(f"  {name:<34} {medians[name]:>9.2f} {min(values):>7.2f} {max(values):>7.2f}")
    print(f"overhead beyond the window: median {statistics.median(overhead):.2f} s "
          f"(min {min(overhead):.2f}, max {max(overhead):.2f}) for a {args.window:g} s window")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"first": first, "runs": runs}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

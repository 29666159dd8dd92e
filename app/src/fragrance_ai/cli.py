"""The ``fragrance-ai`` command: resolve settings, build the app, serve it with uvicorn.

``fragrance-ai worker {llm,rl}`` runs a worker instead (worker.py): it consumes its release's queue on the
Redis broker and serves only /health and /metrics.

Exit codes: 0 after SIGTERM/SIGINT (graceful), 2 for invalid settings or faults (nothing is bound),
70 when the crash_after_s fault fires, 1 when uvicorn cannot bind the port.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence

from fragrance_ai.errors import SettingsError
from fragrance_ai.settings import (
    WORKER_ROLES,
    Settings,
    parse_int,
    parse_redis_url,
    parse_version,
    resolve_settings,
)

EXIT_BAD_SETTINGS = 2
GRACEFUL_SHUTDOWN_S = 2


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (values stay strings: settings.py parses and names the source)."""
    parser = argparse.ArgumentParser(
        prog="fragrance-ai",
        description="Reference service for canary-harness: LLM-ensemble fragrance DNA with PPO variations.",
        epilog="Environment: APP_VERSION, LLM_ENSEMBLE_MODELS, LLM_ENSEMBLE_WEIGHTS, USE_LLM_ENSEMBLE, "
        "FRAGRANCE_FAULTS, FRAGRANCE_LATENCY_SCALE, FRAGRANCE_PPO_BATCH_SIZE, FRAGRANCE_SEED, "
        "FRAGRANCE_STORE_SIZE, FRAGRANCE_MAX_BODY_BYTES, OPENAI_BASE_URL, OPENAI_API_KEY, "
        "FRAGRANCE_LLM_TIMEOUT_S, FRAGRANCE_LLM_RETRIES, FRAGRANCE_REDIS_URL, FRAGRANCE_WORKERS, "
        "FRAGRANCE_QUEUE_KEY. Workers: fragrance-ai worker {llm,rl} --help.",
    )
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="TCP port (default 8001)")
    parser.add_argument("--version", default=None, help="release label (default: $APP_VERSION, else 'dev')")
    parser.add_argument("--log-file", default=None, help="also append the JSON log lines to this file")
    parser.add_argument("--seed", default=None, help="random seed (default: $FRAGRANCE_SEED, else 0)")
    return parser


def build_worker_parser() -> argparse.ArgumentParser:
    """``fragrance-ai worker ROLE``: the options of a worker process."""
    parser = argparse.ArgumentParser(
        prog="fragrance-ai worker",
        description="Consume one role's queue of a release on the Redis broker; /health, /metrics on --port.",
        epilog="Environment: FRAGRANCE_REDIS_URL, FRAGRANCE_QUEUE_KEY and the service's variables "
        "(APP_VERSION, FRAGRANCE_FAULTS, FRAGRANCE_PPO_BATCH_SIZE, LLM_ENSEMBLE_MODELS, ...).",
    )
    parser.add_argument("role", choices=WORKER_ROLES, help="llm: async briefs; rl: PPO updates from feedback")
    parser.add_argument("--redis-url", default=None, help="the broker (default: $FRAGRANCE_REDIS_URL)")
    parser.add_argument(
        "--queue", default=None, help="queue key (default: $FRAGRANCE_QUEUE_KEY, else the version)"
    )
    parser.add_argument("--host", default=None, help="address of /health and /metrics (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="port of /health, /metrics (default 8101 llm, 8201 rl)")
    parser.add_argument("--version", default=None, help="release label (default: $APP_VERSION, else 'dev')")
    parser.add_argument("--log-file", default=None, help="also append the JSON log lines to this file")
    parser.add_argument("--seed", default=None, help="random seed (default: $FRAGRANCE_SEED, else 0)")
    parser.add_argument("--concurrency", default="8", help="llm jobs run at once (default 8)")
    return parser


DEFAULT_WORKER_PORTS = {"llm": "8101", "rl": "8201"}


def _ignore_signal(_signum: int, _frame: object) -> None:
    """Installed before uvicorn runs: uvicorn re-raises the signal that stopped it through the handler
    that was in place before, and the default action would turn a clean shutdown into death by signal."""


def _serve(app: object, settings: Settings) -> int:
    import uvicorn

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        access_log=False,  # the service logs its own JSON "request" events
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=5,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore_signal)
    uvicorn.Server(config).run()
    return 0


def worker_main(argv: Sequence[str]) -> int:
    """Run a worker until SIGTERM/SIGINT; returns the exit code."""
    started = time.monotonic()
    args = build_worker_parser().parse_args(argv)
    try:
        settings = resolve_settings(
            host=args.host,
            port=args.port if args.port is not None else DEFAULT_WORKER_PORTS[args.role],
            version=args.version,
            log_file=args.log_file,
            seed=args.seed,
        )
        picked = args.redis_url, "--redis-url"
        if args.redis_url is None:
            picked = os.environ.get("FRAGRANCE_REDIS_URL", ""), "FRAGRANCE_REDIS_URL"
        if not picked[0].strip():
            raise SettingsError("a worker needs the broker: --redis-url or FRAGRANCE_REDIS_URL")
        redis_url = parse_redis_url(*picked)
        queue = parse_version(args.queue, "--queue") if args.queue is not None else settings.queue
        concurrency = parse_int(args.concurrency, "--concurrency", minimum=1, maximum=1024)
        from prometheus_client import disable_created_metrics

        from fragrance_ai.worker import WorkerOptions, create_worker_app

        disable_created_metrics()
        options = WorkerOptions(role=args.role, redis_url=redis_url, queue=queue, concurrency=concurrency)
        app = create_worker_app(settings, options, started_at=started)
    except SettingsError as exc:
        print(f"fragrance-ai worker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return _serve(app, settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service (or, with ``worker ROLE``, a worker) until SIGTERM/SIGINT; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["worker"]:
        return worker_main(arguments[1:])
    started = time.monotonic()
    args = build_parser().parse_args(arguments)
    try:
        settings = resolve_settings(
            host=args.host, port=args.port, version=args.version, log_file=args.log_file, seed=args.seed
        )
        # Imported only once the settings are known good: a bad value is reported in a blink.
        from prometheus_client import disable_created_metrics

        from fragrance_ai.api import create_app

        # No *_created series: a third of the exposition, and nothing here reads them.
        disable_created_metrics()

        app = create_app(settings, started_at=started)
    except SettingsError as exc:
        print(f"fragrance-ai: error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return _serve(app, settings)


if __name__ == "__main__":
    sys.exit(main())

"""The ``fragrance-ai`` command: resolve settings, build the app, serve it with uvicorn.

Exit codes: 0 after SIGTERM/SIGINT (graceful), 2 for invalid settings or faults (nothing is bound),
70 when the crash_after_s fault fires, 1 when uvicorn cannot bind the port.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

from fragrance_ai.errors import SettingsError
from fragrance_ai.settings import resolve_settings

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
        "FRAGRANCE_LLM_TIMEOUT_S, FRAGRANCE_LLM_RETRIES.",
    )
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="TCP port (default 8001)")
    parser.add_argument("--version", default=None, help="release label (default: $APP_VERSION, else 'dev')")
    parser.add_argument("--log-file", default=None, help="also append the JSON log lines to this file")
    parser.add_argument("--seed", default=None, help="random seed (default: $FRAGRANCE_SEED, else 0)")
    return parser


def _ignore_signal(_signum: int, _frame: object) -> None:
    """Installed before uvicorn runs: uvicorn re-raises the signal that stopped it through the handler
    that was in place before, and the default action would turn a clean shutdown into death by signal."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit code."""
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    try:
        settings = resolve_settings(
            host=args.host, port=args.port, version=args.version, log_file=args.log_file, seed=args.seed
        )
        # Imported only once the settings are known good: a bad value is reported in a blink.
        import uvicorn
        from prometheus_client import disable_created_metrics

        from fragrance_ai.api import create_app

        # No *_created series: a third of the exposition, and nothing here reads them.
        disable_created_metrics()

        app = create_app(settings, started_at=started)
    except SettingsError as exc:
        print(f"fragrance-ai: error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    config = uvicorn.Config(
        app,
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


if __name__ == "__main__":
    sys.exit(main())

"""The ``--canary-*`` options of the harness's locustfile (load/fragrance.py) and their checks.

Kept in the package rather than beside the locustfile: ``locust -f load/`` imports every file of that
directory as a locustfile, so a helper module there would be loaded (and its listeners added) twice.
"""

from __future__ import annotations

from typing import Any

from canary_harness.errors import ConfigError
from canary_harness.loadgen.settings import parse_mix


def add_canary_options(parser: Any) -> None:
    """Add the ``--canary-*`` options to locust's argument parser (``init_command_line_parser``)."""
    parser.add_argument(
        "--canary-mix",
        type=str,
        default="fast=50,balanced=35,creative=15",
        env_var="CANARY_LOAD_MIX",
        help="Journeys per LLM mode, e.g. fast=50,balanced=35,creative=15",
    )
    parser.add_argument(
        "--canary-rate",
        type=float,
        default=0.0,
        env_var="CANARY_LOAD_RATE",
        help="Total requests/s over all users and workers (0: closed loop)",
    )
    parser.add_argument(
        "--canary-max-requests",
        type=int,
        default=100_000,
        env_var="CANARY_LOAD_MAX_REQUESTS",
        help="Stop after this many requests in total (0: no cap)",
    )
    parser.add_argument(
        "--canary-max-time",
        type=float,
        default=3600.0,
        env_var="CANARY_LOAD_MAX_TIME",
        help="Stop after this many seconds even without --run-time",
    )
    parser.add_argument(
        "--canary-timeout",
        type=float,
        default=30.0,
        env_var="CANARY_LOAD_TIMEOUT",
        help="Seconds before an unanswered request counts as failed",
    )
    parser.add_argument("--canary-seed", type=int, default=-1, help="Seed of the mode draws (-1: random)")
    parser.add_argument(
        "--canary-stats-file",
        type=str,
        default="",
        include_in_web_ui=False,
        help="Write per-version, per-mode and failure counts as JSON here at exit",
    )
    parser.add_argument(
        "--canary-workers",
        type=int,
        default=0,
        include_in_web_ui=False,
        help="Set by the master: workers sharing the rate and the request cap",
    )


def option_problems(options: Any) -> list[str]:
    """What is wrong with the parsed ``--canary-*`` options, one message per bad value naming it."""
    problems = []
    try:
        parse_mix(options.canary_mix, "locust option --canary-mix")
    except ConfigError as exc:
        problems.append(str(exc))
    for name in ("canary_rate", "canary_max_requests"):
        if getattr(options, name) < 0:
            problems.append(f"--{name.replace('_', '-')} {getattr(options, name)!r}: must be >= 0")
    for name in ("canary_max_time", "canary_timeout"):
        if not getattr(options, name) > 0:
            problems.append(f"--{name.replace('_', '-')} {getattr(options, name)!r}: must be > 0")
    return problems

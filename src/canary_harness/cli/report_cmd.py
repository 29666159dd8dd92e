"""`canary report`: the HTML report of the last rollout (or of any Allure results directory)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from canary_harness.config import resolve_stack_settings
from canary_harness.configuration.cli import add_location_options, config_path
from canary_harness.reporting.allure_cli import REPORT_DIR, RESULTS_DIR, build_report, open_report
from canary_harness.target import load_config


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``report``."""
    parser = subparsers.add_parser(
        "report", help="build the HTML report (Allure) of the stages' results",
        description="Turns the stages' Allure results (by default <run dir>/allure-results, written by "
                    "canary rollout) into an HTML report in <run dir>/allure-report.",
    )  # fmt: skip
    add_location_options(parser)
    parser.add_argument("--results", help="Allure results directory (default <run dir>/allure-results)")
    parser.add_argument("--output", help="report directory (default <run dir>/allure-report)")
    parser.add_argument("--open", action="store_true", help="serve the report and open it in a browser")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    toml = load_config(config_path(args))
    run_dir = resolve_stack_settings(toml=toml, run_dir=args.run_dir).run_dir
    results = Path(args.results) if args.results else run_dir / RESULTS_DIR
    output = Path(args.output) if args.output else run_dir / REPORT_DIR
    index = build_report(results, output)
    print(f"canary: HTML report of {results}: {index}")
    if args.open:
        return open_report(output)
    return 0

"""``canary smoke [--canary]``: the smoke journey against production or the canary of the recorded stack.

The journey is canary.toml's ``[[smoke]]`` steps, or fragrance-ai's built-in one (health at the recorded
version, create a DNA, ask for options, send feedback): the same one a stage runs as its preflight.
``--url`` aims it at any service instead.
Exit 0 when every step passes, 1 when one fails, 2 for bad input (no stack recorded, no canary).
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from canary_harness.cli.stack_cmd import run_dir_source, settings_from_args
from canary_harness.configuration.cli import add_location_options, config_path
from canary_harness.errors import ConfigError
from canary_harness.smoke import journey_from, run_smoke
from canary_harness.stack_state import load_state
from canary_harness.target import load_config

SMOKE_TIMEOUT_S = 30.0


def _target(args: argparse.Namespace) -> tuple[str, str | None, str]:
    """(base URL, expected version, description) of what to smoke-test."""
    if args.url:
        return args.url, args.version, f"--url {args.url}"
    run_dir = settings_from_args(args).run_dir
    state = load_state(run_dir)
    if state is None:
        raise ConfigError(
            f"run directory {str(run_dir)!r} ({run_dir_source(args)}): no stack recorded there "
            "(start one with `canary stack up`, or give --url)"
        )
    role = "canary" if args.canary else "production"
    handle = state.canary if args.canary else state.production
    if handle is None:
        raise ConfigError(f"run directory {str(run_dir)!r}: no {role} recorded in the stack")
    return handle.url, args.version or handle.version, f"{role} {handle.version} at {handle.url}"


def _smoke(args: argparse.Namespace) -> int:
    config = config_path(args)
    journey = journey_from(load_config(config), str(config or "canary.toml"))
    url, version, target = _target(args)
    with httpx.Client(base_url=url, timeout=SMOKE_TIMEOUT_S) as client:
        steps = run_smoke(client, expected_version=version, journey=journey)
    for step in steps:
        print(f"{'ok  ' if step.ok else 'FAIL'} {step.step} (HTTP {step.status}) {step.detail}")
    ok = len(steps) == len(journey.steps) and all(step.ok for step in steps)
    print(f"smoke {'passed' if ok else 'FAILED'}: {target}")
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``canary smoke``."""
    parser = subparsers.add_parser(
        "smoke", help="run the smoke journey against the recorded production (or --canary, or --url)"
    )
    parser.add_argument("--canary", action="store_true", help="test the recorded canary instead of production")
    parser.add_argument("--url", help="test this base URL instead of a recorded service")
    parser.add_argument("--version", help="version /health must report (default: the recorded one)")
    add_location_options(parser)
    parser.set_defaults(handler=_smoke)

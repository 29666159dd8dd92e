"""``canary weights N``: send N % of traffic to the canary and 100-N % to production.

Validates N (an integer 0..100) before touching anything, renders the upstream, checks the complete
configuration with ``nginx -t``, replaces it atomically, reloads, confirms the new workers serve it,
logs each step on stderr and prints the split NGINX reports as in force. Without N, prints that split.
With ``[traffic] nginx = "external"`` the same is done to the user's NGINX (traffic/external.py): only
``conf.d/upstream.conf`` is written, and no recorded stack is needed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from canary_harness import journal
from canary_harness.cli.stack_cmd import run_dir_source, settings_from_args
from canary_harness.config import parse_percent, resolve_traffic_settings
from canary_harness.configuration.cli import add_location_options, config_path
from canary_harness.deploy.health import health
from canary_harness.errors import ConfigError, StackError
from canary_harness.lock import RolloutLock
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.target import load_config
from canary_harness.traffic.external import ExternalNginxController
from canary_harness.traffic.nginx import InForce


def _step_logging() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("canary weights: %(message)s"))
    logger = logging.getLogger("canary_harness.traffic")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _weights(args: argparse.Namespace) -> int:
    # Validate the value first: a bad N must change nothing, whatever the state of the stack.
    percent = parse_percent(args.percent, "command-line argument N") if args.percent is not None else None
    settings = settings_from_args(args)
    traffic_settings = resolve_traffic_settings(toml=load_config(config_path(args)), stack=settings)
    if traffic_settings.nginx == "external":
        return _external_weights(ExternalNginxController(traffic_settings), percent, args)
    stack = LocalStack(settings)
    state = load_state(stack.run_dir)
    if state is None:
        raise ConfigError(
            f"run directory {str(stack.run_dir)!r} ({run_dir_source(args)}): no stack recorded there "
            "(start one with `canary stack up`)"
        )
    traffic = stack.traffic()
    if percent is not None:
        if percent > 0:
            status = {c.name: c for c in stack.status().components}
            canary = status.get("canary")
            if canary is None or not canary.healthy:
                raise StackError(
                    f"canary weight {percent}: no healthy canary in the stack at {stack.run_dir} "
                    "(start one with `canary stack up --canary-version V`); the weights were not changed"
                )
        handler = _step_logging()
        try:
            with RolloutLock(stack.run_dir, version="", command=f"canary weights {percent}"):
                traffic.set_canary_weight(percent, reason=args.reason or "canary weights command")
        finally:
            logging.getLogger("canary_harness.traffic").removeHandler(handler)
        journal.append(
            stack.run_dir,
            "weight",
            version=state.canary.version if state.canary else None,
            reason=args.reason or "canary weights command",
            weight=percent,
        )
    _print_in_force(traffic.weights_in_force())
    return 0


def _external_weights(traffic: ExternalNginxController, percent: int | None, args: argparse.Namespace) -> int:
    """``[traffic] nginx = "external"``: the user's NGINX, whatever started the services."""
    if percent is not None:
        if percent > 0 and health(f"http://{traffic.canary}") is None:
            raise StackError(
                f"canary weight {percent}: the canary at {traffic.canary} is not healthy; the weights were not changed"
            )
        handler = _step_logging()
        try:
            traffic.set_canary_weight(percent, reason=args.reason or "canary weights command")
        finally:
            logging.getLogger("canary_harness.traffic").removeHandler(handler)
        journal.append(traffic.settings.lock_dir, "weight", version=None,
                       reason=args.reason or "canary weights command (external nginx)", weight=percent)  # fmt: skip
    _print_in_force(traffic.weights_in_force())
    return 0


def _print_in_force(in_force: InForce) -> None:
    print(
        f"in force: production {in_force.production_weight}% ({in_force.production}) / "
        f"canary {in_force.canary_weight}% ({in_force.canary}), generation {in_force.generation}"
    )


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``canary weights``."""
    parser = subparsers.add_parser(
        "weights", help="set the canary's share of traffic (0..100); without N, show the split in force"
    )
    parser.add_argument("percent", nargs="?", metavar="N", help="canary percentage, an integer 0..100")
    parser.add_argument("--reason", help="why (written to the step log)")
    add_location_options(parser)
    parser.set_defaults(handler=_weights)

"""The ``canary`` command: one sub-command module per job, each exposing ``register(subparsers)``.

A sub-command's handler takes the parsed ``argparse.Namespace`` and returns an exit code.
Bad input exits 2 with a message naming the value; a harness error exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from canary_harness.errors import CanaryError, ConfigError, RollbackError
from canary_harness.private import restrict_umask

# Each module registers its own sub-commands; adding a command is one line here.
_COMMAND_MODULES = (
    "canary_harness.cli.stack_cmd",
    "canary_harness.cli.weights_cmd",
    "canary_harness.cli.plan_cmd",
    "canary_harness.cli.rollout_cmd",
    "canary_harness.cli.precheck_cmd",
    "canary_harness.cli.history_cmd",
    "canary_harness.cli.images_cmd",
    "canary_harness.cli.smoke_cmd",
    "canary_harness.cli.report_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="canary", description="Progressive canary rollouts through NGINX.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``canary`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    # Everything written under a run directory (by us or the processes we start) is private to the user.
    restrict_umask()
    try:
        return int(handler(args))
    except ConfigError as exc:
        print(f"canary: error: {exc}", file=sys.stderr)
        return 2
    except RollbackError as exc:  # the canary may keep traffic or users get errors: 3, as pytest's session
        print(f"canary: ROLLBACK FAILED: {exc}", file=sys.stderr)
        return 3
    except CanaryError as exc:
        print(f"canary: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("canary: interrupted", file=sys.stderr)
        return 130

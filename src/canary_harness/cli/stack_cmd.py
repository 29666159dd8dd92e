"""``canary stack up|status|down``: the local stack of NGINX, production and an optional canary.

Settings resolve flags > environment (CANARY_*) > canary.toml [stack] > defaults.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from canary_harness.config import StackSettings, load_toml, parse_percent, resolve_stack_settings
from canary_harness.errors import ConfigError
from canary_harness.lock import RolloutLock
from canary_harness.redact import show_env
from canary_harness.stack import LocalStack, StackState, StackStatus, load_state


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """``--run-dir`` and ``--config``: where a stack is recorded (shared by the stack-reading commands)."""
    parser.add_argument(
        "--run-dir", help="run directory holding state.json (default .canary; env CANARY_RUN_DIR)"
    )
    parser.add_argument("--config", type=Path, help="TOML config file (default ./canary.toml if present)")


def settings_from_args(args: argparse.Namespace) -> StackSettings:
    """Resolve StackSettings from the parsed flags, the environment and canary.toml."""
    return resolve_stack_settings(
        toml=load_toml(getattr(args, "config", None)),
        nginx_port=getattr(args, "nginx_port", None),
        production_port=getattr(args, "production_port", None),
        canary_port=getattr(args, "canary_port", None),
        run_dir=getattr(args, "run_dir", None),
        production_version=getattr(args, "production_version", None),
        canary_version=getattr(args, "canary_version", None),
        canary_env=getattr(args, "canary_env", None),
    )


def run_dir_source(args: argparse.Namespace) -> str:
    """Where the run directory setting came from, for messages."""
    if getattr(args, "run_dir", None) is not None:
        return "from --run-dir"
    if os.environ.get("CANARY_RUN_DIR"):
        return "from environment CANARY_RUN_DIR"
    if "run_dir" in load_toml(getattr(args, "config", None)).get("stack", {}):
        return "from canary.toml key 'run_dir'"
    return "default"


def _print_state(state: StackState) -> None:
    if state.nginx is not None:
        print(f"nginx       PID {state.nginx.pid}  {state.nginx.base_url}  dir {state.nginx.dir}")
    for handle in (state.production, state.canary):
        if handle is not None:
            print(f"{handle.role:<11} PID {handle.pid}  {handle.url}  {handle.version}  "
                  f"log {handle.log_path}")
    print(f"state       {state.state_file}")


def _print_status(status: StackStatus) -> None:
    for c in status.components:
        health = "healthy" if c.healthy else ("running, unhealthy" if c.running else "NOT RUNNING")
        version = f"  {c.version}" if c.version else ""
        detail = f"  ({c.detail})" if c.detail else ""
        print(f"{c.name:<11} PID {c.pid}  {c.url}  {health}{version}{detail}")
    if status.canary_weight is None:
        print("weights     unknown (nginx does not answer)")
    else:
        print(
            f"weights     production {status.production_weight}% / canary {status.canary_weight}%"
            f"  (in force, generation {status.generation})"
        )


def _up(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.canary_env and settings.canary_version is None:
        raise ConfigError(f"--canary-env {show_env(settings.canary_env)}: given without a canary (--canary-version)")
    weight = 0
    if args.canary_weight is not None:
        weight = parse_percent(args.canary_weight, "from --canary-weight")
    with RolloutLock(settings.run_dir, version=settings.canary_version or "", command="canary stack up"):
        state = LocalStack(settings).up(with_canary=settings.canary_version is not None, canary_weight=weight)
    print(f"canary stack up: running in {state.run_dir}")
    _print_state(state)
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if load_state(settings.run_dir.resolve()) is None:
        print(f"no stack recorded in {settings.run_dir.resolve()} ({run_dir_source(args)})")
        return 1
    status = LocalStack(settings).status()
    _print_status(status)
    return 0 if status.ok else 1


def _down(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    stack = LocalStack(settings)
    recorded = load_state(stack.run_dir) is not None
    with RolloutLock(stack.run_dir, version="stack down", command="canary stack down"):
        unrecorded = stack.down()
    if recorded:
        print(f"canary stack down: stopped everything recorded in {stack.run_dir}")
    else:
        print(f"canary stack down: nothing recorded in {stack.run_dir}")
    if unrecorded:
        print(f"canary stack down: also stopped {len(unrecorded)} unrecorded process(es) the harness started "
              f"for {stack.run_dir}: PIDs {', '.join(map(str, unrecorded))}")
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``canary stack`` and its sub-commands."""
    stack = subparsers.add_parser("stack", help="start, inspect and stop the local NGINX + service stack")
    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION")

    def no_action(_args: argparse.Namespace) -> int:
        stack.print_help()
        return 2

    stack.set_defaults(handler=no_action)

    up = actions.add_parser("up", help="start NGINX, production and (with --canary-version) the canary")
    up.add_argument("--production-version", help="production version (default v0.1.0)")
    up.add_argument("--canary-version", help="start a canary at this version")
    up.add_argument("--canary-env", action="append", default=[], metavar="K=V",
                    help="environment for the canary (repeatable), e.g. FRAGRANCE_FAULTS=...")
    up.add_argument("--canary-weight", help="initial canary weight 0..100 (default 0; needs a canary)")
    up.add_argument("--nginx-port", help="NGINX listen port on 127.0.0.1 (default 8080)")
    up.add_argument("--production-port", help="production port (default 8000)")
    up.add_argument("--canary-port", help="canary port (default 8001)")
    add_location_options(up)
    up.set_defaults(handler=_up)

    status = actions.add_parser("status", help="what runs (PIDs alive, /health) and the weights in force")
    add_location_options(status)
    status.set_defaults(handler=_status)

    down = actions.add_parser("down", help="stop everything the stack started, by PID")
    add_location_options(down)
    down.set_defaults(handler=_down)

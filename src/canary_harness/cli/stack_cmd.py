"""``canary stack up|status|down``: the local stack of NGINX, production and an optional canary.

Settings resolve by the one precedence rule: flags > environment (CANARY_*) > canary.toml [stack] > defaults.
"""

from __future__ import annotations

import argparse
from typing import Any

from canary_harness.config import StackSettings, parse_percent, resolve_stack_settings
from canary_harness.configuration.cli import add_location_options, add_setting, config_path, source_of
from canary_harness.deploy.external import is_external, parse_service_url
from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.errors import ConfigError
from canary_harness.lock import RolloutLock
from canary_harness.redact import show_env
from canary_harness.reporting.longwait import LongWait
from canary_harness.stack import LocalStack
from canary_harness.stack_state import StackState, load_state
from canary_harness.stack_status import StackStatus
from canary_harness.target import load_config


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend``: how the command starts services (recorded ones are stopped the way they started)."""
    add_setting(parser, "backend", help="process, docker or compose: how services are started")


def settings_from_args(args: argparse.Namespace) -> StackSettings:
    """Resolve StackSettings from the parsed flags, the environment and canary.toml."""
    path = config_path(args)
    return resolve_stack_settings(
        toml=load_config(path),
        toml_file=str(path or "canary.toml"),
        nginx_port=getattr(args, "nginx_port", None),
        production_port=getattr(args, "production_port", None),
        canary_port=getattr(args, "canary_port", None),
        run_dir=getattr(args, "run_dir", None),
        production_version=getattr(args, "production_version", None),
        canary_version=getattr(args, "canary_version", None),
        canary_env=getattr(args, "canary_env", None),
        backend=getattr(args, "backend", None),
    )


def run_dir_source(args: argparse.Namespace) -> str:
    """Where the run directory setting came from, for messages."""
    path = config_path(args)
    return source_of(args, "run_dir", load_config(path), toml_file=str(path or "canary.toml"))[1]


def _print_state(state: StackState) -> None:
    if state.nginx is not None:
        print(f"nginx       PID {state.nginx.pid}  {state.nginx.base_url}  dir {state.nginx.dir}")
    for handle in (state.production, state.canary):
        if handle is not None:
            ident = f"container {handle.container_id[:12]}" if handle.container_id else f"PID {handle.pid}"
            where = "given by URL, never stopped by the harness" if is_external(handle) else f"log {handle.log_path}"
            print(f"{handle.role:<11} {ident}  {handle.url}  {handle.version}  {where}")
    print(f"state       {state.state_file}")


def _print_status(status: StackStatus) -> None:
    for c in status.components:
        health = "healthy" if c.healthy else ("running, unhealthy" if c.running else "NOT RUNNING")
        version = f"  {c.version}" if c.version else ""
        detail = f"  ({c.detail})" if c.detail else ""
        # A container (or a service given by URL) has no local PID: its detail names the container.
        ident = f"PID {c.pid}" if c.pid is not None else "no PID"
        print(f"{c.name:<11} {ident}  {c.url}  {health}{version}{detail}")
    if status.canary_weight is None:
        print("weights     unknown (nginx does not answer)")
    else:
        print(
            f"weights     production {status.production_weight}% / canary {status.canary_weight}%"
            f"  (in force, generation {status.generation})"
        )


def _service_urls(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """--production-url/--canary-url, refused with the flags that only make sense for a started service."""
    urls = {role: parse_service_url(raw, f"from --{role}-url") if raw else None
            for role, raw in (("production", args.production_url), ("canary", args.canary_url))}  # fmt: skip
    if urls["production"] and urls["production"] == urls["canary"]:
        raise ConfigError(f"--production-url and --canary-url are both {urls['canary']!r}: they must differ")
    conflicts = {"production": (("--production-port", args.production_port),
                                ("--production-version", args.production_version)),
                 "canary": (("--canary-port", args.canary_port), ("--canary-env", args.canary_env))}  # fmt: skip
    for role, url in urls.items():
        for flag, value in conflicts[role] if url else ():
            if value:
                raise ConfigError(f"{flag} {value!r}: the {role} at {url} (--{role}-url) is not started by the "
                                  "harness; drop one of the two")  # fmt: skip
    return urls["production"], urls["canary"]


def _up(args: argparse.Namespace) -> int:
    # Every flag is checked before anything starts.
    production_url, canary_url = _service_urls(args)
    settings = settings_from_args(args)
    if settings.canary_env and settings.canary_version is None:
        raise ConfigError(f"--canary-env {show_env(settings.canary_env)}: given without a canary (--canary-version)")
    weight = 0
    if args.canary_weight is not None:
        weight = parse_percent(args.canary_weight, "from --canary-weight")
    with RolloutLock(settings.run_dir, version=settings.canary_version or "", command="canary stack up"):
        with LongWait("canary stack up: starting the services"):
            state = LocalStack(settings).up(
                with_canary=settings.canary_version is not None or canary_url is not None, canary_weight=weight,
                production_url=production_url, canary_url=canary_url,
            )  # fmt: skip
    print(f"canary stack up: running in {state.run_dir}")
    _print_state(state)
    return 0


def _print_unrecorded(handles: list[ServiceHandle], verb: str) -> None:
    for handle in handles:
        print(
            f"{handle.role:<11} container {str(handle.container_id)[:12]}  {handle.url}  {handle.version}  "
            f"({verb}: labelled with this run dir, not recorded)"
        )


def _status(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if load_state(settings.run_dir.resolve()) is None:
        print(f"no stack recorded in {settings.run_dir.resolve()} ({run_dir_source(args)})")
        _print_unrecorded(LocalStack(settings).unrecorded_containers(), "`canary stack down` removes it")
        return 1
    status = LocalStack(settings).status()
    _print_status(status)
    return 0 if status.ok else 1


def _down(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    stack = LocalStack(settings)
    recorded = load_state(stack.run_dir) is not None
    with RolloutLock(stack.run_dir, version="stack down", command="canary stack down"):
        removed = stack.down()
    _print_unrecorded(removed.containers, "removed")
    if recorded:
        print(f"canary stack down: stopped everything recorded in {stack.run_dir}")
    elif not removed:
        print(f"canary stack down: nothing recorded in {stack.run_dir}")
    if removed.pids:
        print(
            f"canary stack down: also stopped {len(removed.pids)} unrecorded process(es) the harness started "
            f"for {stack.run_dir}: PIDs {', '.join(map(str, removed.pids))}"
        )
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
    add_setting(up, "production_version", help="production version")
    add_setting(up, "canary_version", help="start a canary at this version")
    add_setting(
        up, "canary_env", help="environment for the canary (repeatable), e.g. FRAGRANCE_FAULTS=...", flag_only=True
    )
    up.add_argument("--canary-weight", help="initial canary weight 0..100 (default 0; needs a canary)")
    for name in ("nginx_port", "production_port", "canary_port"):
        add_setting(up, name)
    add_backend_option(up)
    add_setting(up, "production_url", help="use the production already running there (never stopped)", flag_only=True)
    add_setting(up, "canary_url", help="use the canary already running there (never stopped)", flag_only=True)
    add_location_options(up)
    up.set_defaults(handler=_up)

    status = actions.add_parser("status", help="what runs (PIDs alive, /health) and the weights in force")
    add_location_options(status)
    status.set_defaults(handler=_status)

    down = actions.add_parser("down", help="stop everything the stack started, by PID or container label")
    add_location_options(down)
    down.set_defaults(handler=_down)

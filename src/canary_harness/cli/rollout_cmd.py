"""`canary rollout`, `canary promote` and `canary rollback`."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import time
from typing import Any

from canary_harness.cli.stack_cmd import add_backend_option
from canary_harness.config import (
    StackSettings,
    parse_env_pairs,
    parse_positive_float,
    parse_version,
    resolve_stack_settings,
)
from canary_harness.configuration.cli import add_location_options, add_setting, config_path, source_of, value_of
from canary_harness.configuration.table import JUDGES
from canary_harness.errors import RolloutError
from canary_harness.lock import RolloutLock
from canary_harness.notify import promotion_notifier
from canary_harness.rollback import rollback
from canary_harness.rollout import (
    DEFAULT_STAGES,
    RolloutPlan,
    format_summary,
    parse_stages,
    promote,
    rollback_failed_since,
    run_rollout,
)
from canary_harness.stack_state import load_state
from canary_harness.target import load_config


def _settings(args: argparse.Namespace, **overrides: Any) -> StackSettings:
    path = config_path(args)
    return resolve_stack_settings(
        toml=load_config(path), toml_file=str(path or "canary.toml"), run_dir=args.run_dir,
        backend=getattr(args, "backend", None), **overrides,
    )  # fmt: skip


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register rollout, promote and rollback."""
    rollout = subparsers.add_parser(
        "rollout",
        help="progressive rollout 1 → 5 → 25 → 100 %%, gated per stage",
        description="Run one pytest stage session per stage; stop and roll back at "
        "the first failure. Arguments after -- go to every pytest run.",
    )
    rollout.add_argument("--version", required=True, help="canary release version, e.g. v0.2.0")
    rollout.add_argument("--stages", default=",".join(map(str, DEFAULT_STAGES)), help="default 1,5,25,100")
    rollout.add_argument("--partial", action="store_true", help="allow a stage list that does not end at 100")
    add_setting(rollout, "observation_period", help="seconds per stage")
    add_setting(rollout, "production_version", help="production version if the stack must be started")
    # Flag only: each stage gets them in its environment (CANARY_ENV, CANARY_PRODUCTION_ENV), never in argv.
    add_setting(rollout, "canary_env", flag_only=True)
    add_setting(rollout, "production_env", flag_only=True)
    add_setting(rollout, "judge", choices=JUDGES)
    add_setting(rollout, "dry_run", help="run every check, move no traffic")
    add_backend_option(rollout)
    rollout.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- extra pytest arguments")
    add_location_options(rollout)
    rollout.set_defaults(handler=_rollout)

    prom = subparsers.add_parser("promote", help="after a full rollout, production becomes the new version")
    prom.add_argument("--version", required=True)
    prom.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="post the promotion as JSON to URL (repeatable; also canary.toml [notify] urls)",
    )
    add_backend_option(prom)
    add_location_options(prom)
    prom.set_defaults(handler=_promote)

    back = subparsers.add_parser("rollback", help="canary weight 0 (verified by traffic), canary stopped")
    back.add_argument("--version", help="version being rolled back (default: the running canary's)")
    back.add_argument("--reason", default="manual rollback")
    add_setting(back, "keep_canary", help="leave the canary running")
    add_location_options(back)
    back.set_defaults(handler=_rollback)


def _rollout(args: argparse.Namespace) -> int:
    version = parse_version(args.version, "from --version")
    stages = parse_stages(args.stages, "from --stages", require_full=not args.partial)
    period = (
        None
        if args.observation_period is None
        else parse_positive_float(args.observation_period, "from --observation-period")
    )
    settings = _settings(args, production_version=args.production_version)
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    plan = RolloutPlan(
        version=version,
        stages=stages,
        stack=settings,
        observation_period=period,
        dry_run=value_of(args, "dry_run"),
        judge=args.judge,
        canary_env=parse_env_pairs(args.canary_env, "from --canary-env"),
        production_env=parse_env_pairs(args.production_env, "from --production-env"),
        config_file=None if config_path(args) is None else str(config_path(args)),
        pytest_args=tuple(extra),
    )
    with RolloutLock(settings.run_dir, version=version) as lock:
        print(
            f"=== canary rollout {version}: stages {' -> '.join(f'{s}%' for s in stages)}"
            f"{'  (DRY RUN: no traffic will move)' if plan.dry_run else ''} ===",
            flush=True,
        )
        print(f"    each stage runs: {shlex.join(plan.stage_command(stages[0]))}{plan.env_note()}", flush=True)
        started = time.time()
        outcomes = run_rollout(plan, lambda text: print(text, flush=True), lock)
    failed_rollback = rollback_failed_since(settings.run_dir, version, started)
    print(format_summary(plan, outcomes, rollback_failed=failed_rollback), flush=True)
    ok = len(outcomes) == len(stages) and all(item.passed for item in outcomes)
    return 3 if failed_rollback else 0 if ok else 1


def _backend_given(args: argparse.Namespace) -> bool:
    return source_of(args, "backend", load_config(config_path(args)))[1] != "default"


def _promote(args: argparse.Namespace) -> int:
    version = parse_version(args.version, "from --version")
    settings = _settings(args)
    state = load_state(settings.run_dir)
    if not _backend_given(args) and state is not None and state.production is not None:
        # Unless told otherwise, production stays the kind of service it is (a container stays a container).
        settings = dataclasses.replace(settings, backend=state.production.backend)
    notifier = promotion_notifier(load_config(config_path(args)), args.notify)
    with RolloutLock(settings.run_dir, version=version, command="promotion"):
        promote(settings, version, lambda text: print(text, flush=True))
    notifier(version)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    settings = _settings(args)
    version = None if args.version is None else parse_version(args.version, "from --version")
    state = load_state(settings.run_dir)
    if state is None and version is None:
        raise RolloutError(f"nothing to roll back: no stack recorded in {settings.run_dir}")
    if version is None and state is not None and state.canary is not None:
        version = state.canary.version
    with RolloutLock(settings.run_dir, version=version or "", command="canary rollback"):
        result = rollback(
            settings,
            version=version,
            stage=None,
            reason=args.reason,
            keep_canary=value_of(args, "keep_canary"),
            actor=None,
        )
    print(f"canary: {result.summary()}")
    return 0

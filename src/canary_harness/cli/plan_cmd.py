"""`canary plan`: how long each check of a stage needs, before any traffic moves."""

from __future__ import annotations

import argparse
from typing import Any

from canary_harness.config import parse_percent, parse_positive_float
from canary_harness.configuration.cli import add_setting, config_path, value_of
from canary_harness.configuration.resolve import validate_table_sections
from canary_harness.judge.plan_text import format_plan
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.settings import JudgeSettings
from canary_harness.stages import SHADOW_STAGE, shadow_plan_point
from canary_harness.target import load_config


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``canary plan``."""
    parser = subparsers.add_parser(
        "plan",
        help="print how long each check of a stage needs (n50/n90 in requests and seconds)",
        description="Size a stage before moving traffic: for each sequential test, the samples and "
        "seconds it needs to reach a verdict at the minimum detectable effect, and whether it can at all.",
    )
    # Its own flag, not the stage setting: a plan reads no CANARY_STAGE and may size any weight 0..100.
    parser.add_argument(
        "--stage",
        dest="weight",
        required=True,
        help="canary weight of the stage, percent (e.g. 5); 0: the shadow stage, 100 % copied",
    )
    parser.add_argument("--rps", required=True, help="total request rate through the proxy, requests/s")
    add_setting(
        parser, "observation_period",
        help="seconds the stage is observed (without it and its twins: canary.toml [judge] max_duration_s, 900)",
    )  # fmt: skip
    add_setting(parser, "config_file", help="canary.toml to read [judge] and [stage] from")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the plan; bad values raise ConfigError (exit 2, nothing else happens)."""
    stage = parse_percent(args.weight, "from --stage")
    rps = parse_positive_float(args.rps, "from --rps")
    path = config_path(args)
    toml = load_config(path)
    source = f"{path or 'canary.toml'} [judge]"
    settings = JudgeSettings.from_mapping(toml.get("judge", {}), source)
    validate_table_sections({"stage": toml.get("stage", {})}, str(path or "canary.toml"))
    # The stage's own precedence: flag, environment, canary.toml [stage]; without any, [judge] max_duration_s.
    period = value_of(args, "observation_period", toml, toml_file=str(path or "canary.toml"), default=None)
    if period is not None:
        settings = _with_period(settings, period)
    if stage == SHADOW_STAGE:
        planned, total = shadow_plan_point(1.0, rps)
        print(f"shadow stage: {rps:g} req/s of users, every one copied to the canary (planned as {planned} % of "
              f"{total:g} req/s)")  # fmt: skip
        print(format_plan(plan_stage(planned, total, settings)))
        return 0
    print(format_plan(plan_stage(stage, rps, settings)))
    return 0


def _with_period(settings: JudgeSettings, period: float) -> JudgeSettings:
    """The settings a stage observed for ``period`` seconds judges with.

    As in the stage session: a soak longer than the window soaks for the whole window, a warm-up is cut
    to half of it.
    """
    return settings.replace(
        max_duration_s=period,
        min_soak_s=min(settings.min_soak_s, period),
        warmup_s=min(settings.warmup_s, period / 2),
    )

"""The stage's load: its settings (canary.toml [load] under the --canary-load-* flags), the rate
``--canary-load-rate auto`` sizes it to, and the load runs that send it (through NGINX, or to each arm
directly in a dry run)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from canary_harness.errors import CanaryError
from canary_harness.judge.plan_text import rate_to_decide
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.settings import JudgeSettings
from canary_harness.loadgen import LoadRun, LoadSettings, LoadStats, parse_mix
from canary_harness.loadgen.sizing import (
    AutoLoad,
    load_bound,
    machine_max_rps,
    name_bound,
    real_rate,
    spawn_rate_for,
    users_for_rate,
)
from canary_harness.metrics.protocol import MetricsSource
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stages import SHADOW_STAGE, shadow_plan_point

# Load keeps running a little past the window so the last ticks still see traffic.
LOAD_MARGIN_S = 5.0
# Rough request rate of one simulated user, used only to print the plan before load is measured.
RPS_PER_USER = 1.0
# Services given by URL may have real users: their traffic is measured over this long before load starts.
REAL_TRAFFIC_S = 5.0


def load_settings(options: StageOptions) -> LoadSettings:
    """canary.toml [load] with the --canary-load-* options (or their env/ini twins) over it."""
    base = LoadSettings.from_mapping(options.toml.get("load", {}), "canary.toml [load]")
    return dataclasses.replace(
        base,
        users=base.users if options.load_users is None else options.load_users,
        # --canary-load-rate 0 is the closed loop (the fixed load of old); a number, that constant rate.
        rate_rps=base.rate_rps if not isinstance(options.load_rate, float) else options.load_rate or None,
        mix=base.mix if options.load_mix is None else parse_mix(options.load_mix, "from --canary-load-mix"),
        workers=base.workers if options.load_workers is None else options.load_workers,
    )


def load_is_auto(options: StageOptions) -> bool:
    """--canary-load-rate auto, also by default: unless a rate was given (flag, env, ini or canary.toml [load])."""
    if options.no_load:
        return False
    if options.load_rate is not None:
        return options.load_rate == "auto"
    return "rate_rps" not in options.toml.get("load", {})


def judged_mix(load: LoadSettings, settings: JudgeSettings) -> dict[str, float] | None:
    """The load's LLM-mode mix over the judged latency groups, for the planner; None (an even split over the
    groups) when the load's mix names none of them (another target's groups, e.g. "all", or its request mix)."""
    return {mode: share for mode, share in load.mix.items() if mode in settings.modes} or None


def auto_rate(options: StageOptions, load: LoadSettings, rps: float, settings: JudgeSettings) -> tuple[AutoLoad, float]:
    """--canary-load-rate auto: the rate at which the checks' n90 fits the window (bounded by the machine and
    --canary-load-max-rps, with why), and that rate.

    Sized on the load's own mix in requests the load sends (n90 does not depend on the rate, so a plan
    at any rate gives the need); measured rates count only LLM requests, another unit, so not here."""
    machine = machine_max_rps()
    stage_percent, plan_rps = plan_point(options, rps)
    plan = plan_stage(stage_percent, plan_rps, settings, judged_mix(load, settings))
    rate, why = rate_to_decide(plan, load_bound(options.load_max_rps, machine))
    # A shadow stage's plan counts the copies too: the users' rate is its total over (1 + share).
    rate = rate * rps / plan_rps
    return name_bound(rate, why, options.load_max_rps, machine), rate


def shadow_fraction(options: StageOptions) -> float:
    """The share (0..1) of production's requests the canary sees as copies: the shadow share at stage 0,
    0.0 at any other stage (and in a dry run, which moves no traffic)."""
    return options.shadow_share / 100 if options.stage == SHADOW_STAGE and not options.dry_run else 0.0


def plan_point(options: StageOptions, rps: float) -> tuple[int, float]:
    """The (stage percent, total req/s) the planner sizes the stage at. A shadow stage copying s of R req/s
    gives the canary s·R and production R: the split s / (1 + s) of (1 + s)·R, which the planner knows."""
    share = shadow_fraction(options)
    return (options.stage, rps) if share == 0 else shadow_plan_point(share, rps)


def sized(load: LoadSettings, auto: AutoLoad) -> tuple[LoadSettings, str]:
    """The load settings that send ``auto.load_rps``, and a line saying what and why (the plan shows it)."""
    if auto.load_rps <= 0:
        return load, f"load rate auto: no load ({auto.why})"
    users = users_for_rate(auto.load_rps, load.users)
    line = f"load rate auto: {auto.load_rps:g} req/s with {users} users ({auto.why})"
    return dataclasses.replace(
        load, rate_rps=auto.load_rps, users=users, spawn_rate=spawn_rate_for(users, load.spawn_rate)
    ), line


def real_traffic(source: MetricsSource) -> float:
    """Requests/s real users send through both arms (services given by URL), before any load of ours."""
    before = source.snapshots(("canary", "production")).values()
    started = time.monotonic()
    time.sleep(REAL_TRAFFIC_S)  # a measurement interval: the counters' rate over it is the result
    after = source.snapshots(("canary", "production")).values()
    return real_rate(
        sum(item.requests for item in before), sum(item.requests for item in after), time.monotonic() - started
    )


def load_runs(
    options: StageOptions, record: StageRecord, settings: LoadSettings, stats_dir: Path, limit_s: float
) -> list[LoadRun]:
    """The load runs of a stage observed for up to ``limit_s``: one through NGINX, or one per arm in a dry run."""
    duration = limit_s + LOAD_MARGIN_S
    if not options.dry_run:
        assert record.nginx_url is not None
        return [LoadRun(record.nginx_url, duration, settings, stats_dir / "nginx")]
    # Dry run: mirror the split without touching NGINX, one load run per arm, sized so that the
    # canary's share of requests is the stage's (the split check holds the judge to it).
    share = options.stage / 100
    canary_users = max(1, round(settings.users * share))
    arms = [(record.canary_url, share, canary_users, "canary")]
    if share < 1:
        arms.append((record.production_url, 1 - share, max(1, round(canary_users * (1 - share) / share)), "production"))
    runs = []
    for url, part, users, name in arms:
        assert url is not None
        rate = None if settings.rate_rps is None else settings.rate_rps * part
        runs.append(LoadRun(url, duration, dataclasses.replace(settings, users=users, rate_rps=rate), stats_dir / name))
    return runs


def stop_all(runs: list[LoadRun]) -> list[LoadStats]:
    """Stop every load run even if one fails to stop; the first error is raised after all stopped."""
    stats, errors = [], []
    for run in runs:
        try:
            stats.append(run.stop())
        except CanaryError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return stats

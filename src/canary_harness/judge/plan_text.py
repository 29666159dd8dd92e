"""A stage plan for people and for the load: the text table `canary plan` prints, and the rate that decides."""

from __future__ import annotations

import math

from canary_harness.errors import ConfigError
from canary_harness.judge.stage_plan import NOT_APPLICABLE, StagePlan, TestPlan


def format_plan(plan: StagePlan) -> str:
    """The plan as a text table followed by its plain-language notes."""
    lines = [
        f"Stage {plan.stage_percent} % at {plan.total_rps:g} rps: canary gets {plan.canary_rps:g} rps; "
        f"window {plan.max_duration_s:g} s (warm-up {plan.warmup_s:g} s, min soak {plan.min_soak_s:g} s); "
        f"α_i = {plan.alpha_i:.4g}, β_i = {plan.beta_i:.4g}",
    ]
    header = ("check", "test", "true effect", "n50", "n90", "t50", "t90", "in window")
    rows = [header]
    for t in plan.tests:
        unit = "pair" if t.unit == "pairs" else "req"
        rows.append(
            (
                t.check,
                f"{t.role.upper()}: {t.description}",
                t.effect,
                "-" if t.n50 is None else f"{t.n50} {unit}",
                "-" if t.n90 is None else f"{t.n90} {unit}",
                _secs(t.seconds50),
                _secs(t.seconds90),
                t.reach,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.extend(plan.notes)
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def rate_to_decide(plan: StagePlan, max_rps: float) -> tuple[float, str]:
    """The total request rate at which every request-counted test's n90 fits the window, and why.

    n90 does not depend on the rate, so one plan (at any rate) gives each test's need: the rate
    scaled by n90 / (samples the window delivers). The slowest test sets the rate; above
    ``max_rps`` it is capped there and the reason says which test will stay undecided. Loss
    blocks are left out: their rate is the service's, not the load's, under the default plan.
    """
    if not math.isfinite(max_rps) or max_rps <= 0:
        raise ConfigError(f"load max rate {max_rps!r}: must be a positive number of requests per second")
    needs: list[tuple[float, TestPlan]] = []
    for test in plan.tests:
        if test.unit != "requests" or test.reach == NOT_APPLICABLE or test.available <= 0:
            continue
        need = math.inf if test.n90 is None else plan.total_rps * test.n90 / test.available
        needs.append((need, test))
    if not needs:
        return min(plan.total_rps, max_rps), "no request-counted test to size the load for"
    need, slowest = max(needs, key=lambda item: item[0])
    what = f"{slowest.check} ({slowest.role.upper()}: {slowest.description})"
    if need > max_rps:
        shown = "more than the planner's limit" if math.isinf(need) else f"{need:.0f} req/s"
        return max_rps, (
            f"capped at the load's maximum {max_rps:g} req/s: {what} needs {shown} for its n90 within "
            f"{plan.max_duration_s:g} s at {plan.stage_percent} %, so it will likely end undecided"
        )
    rate = math.ceil(need * 10) / 10
    return rate, f"the slowest test, {what}, needs {rate:g} req/s for its n90 within {plan.max_duration_s:g} s"

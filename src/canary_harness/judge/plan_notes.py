"""The plain-language conclusions under a stage plan: when a healthy canary passes, what is caught when."""

from __future__ import annotations

import math

from canary_harness.judge.check_names import SCHEMA
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.stage_plan import LIKELY, NEVER, NOT_APPLICABLE, POSSIBLE, StagePlan


def plan_notes(plan: StagePlan, settings: JudgeSettings) -> tuple[str, ...]:
    """The notes printed under the plan's table."""
    notes: list[str] = []
    window = f"{settings.max_duration_s:g} s"
    blockers = [t for t in plan.tests if t.role == "pass" and t.reach == NEVER]
    if blockers:
        details = "; ".join(
            f"{t.check} needs at least {_n(t.n_min)} {t.unit}, the stage gets ~{t.available:.0f}" for t in blockers
        )
        notes.append(
            f"This stage can never reach a PASS verdict within {window} at {plan.total_rps:g} rps: "
            f"{details}. It will end INCONCLUSIVE (on_inconclusive = {settings.on_inconclusive})."
        )
    else:
        t50, t90 = plan.pass_seconds
        if t90 is not None and t90 <= settings.max_duration_s:
            notes.append(f"A healthy canary should PASS after ~{t50:.0f} s (90 %: {t90:.0f} s) of {window}.")
        elif t50 is not None and t50 <= settings.max_duration_s:
            notes.append(f"A healthy canary PASSes within {window} only about half the time (median ~{t50:.0f} s).")
        else:
            notes.append(
                f"A healthy canary will rarely PASS within {window}: expect INCONCLUSIVE "
                f"(on_inconclusive = {settings.on_inconclusive})."
            )
    checks = dict.fromkeys(t.check for t in plan.tests)
    for check in checks:
        fails = [t for t in plan.tests if t.check == check and t.role == "fail" and t.reach != NOT_APPLICABLE]
        if fails and all(t.reach == NEVER for t in fails):
            notes.append(f"{check}: even the minimum detectable regression can never be caught within {window}.")
        elif fails:
            fastest = min(fails, key=lambda t: math.inf if t.seconds50 is None else t.seconds50)
            median = "unknown" if fastest.seconds50 is None else f"~{fastest.seconds50:.0f} s"
            if fastest.reach == LIKELY or any(t.reach == LIKELY for t in fails):
                notes.append(f"{check}: {fastest.effect} is caught after {median} (median, {fastest.description}).")
            elif fastest.reach == POSSIBLE:
                notes.append(
                    f"{check}: {fastest.effect} is caught within {window} only about half the time (median {median})."
                )
            else:
                notes.append(f"{check}: {fastest.effect} is unlikely to be caught within {window} (median {median}).")
    if settings.schema_policy == "zero_tolerance" and SCHEMA in settings.checks:
        notes.append(f"{SCHEMA}: the first schema failure fails the stage at once.")
    return tuple(notes)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)

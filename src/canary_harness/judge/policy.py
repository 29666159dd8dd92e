"""Stage verdicts from check results: FAIL / PASS / INCONCLUSIVE and the on_inconclusive policy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from canary_harness.judge.check_names import check_family
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State


def turned_off_as_not_applicable(checks: Sequence[CheckVerdict], settings: JudgeSettings) -> tuple[CheckVerdict, ...]:
    """The checks, those of a family the target turns off (``[judge] checks``) N/A and saying so, whatever
    their data would have said: they never fail a stage and never hold it."""

    def applicable(verdict: CheckVerdict) -> CheckVerdict:
        family = check_family(verdict.name)
        if family in settings.checks:
            return verdict
        message = f"{verdict.metric}: not a check of this target ([judge] checks leaves out {family!r})"
        return dataclasses.replace(verdict, state=State.NOT_APPLICABLE, message=message)

    return tuple(applicable(verdict) for verdict in checks)


def failed_reason(checks: Sequence[CheckVerdict], elapsed_s: float) -> str:
    """Why a stage failed: every failing check's message."""
    lines = [c.message for c in checks if c.state is State.FAIL]
    return f"FAIL after {elapsed_s:.0f} s, roll back: " + "; ".join(lines)


def running_reason(checks: Sequence[CheckVerdict], elapsed_s: float) -> str:
    """Progress in one line: how many checks are shown so far."""
    shown = sum(c.state is State.PASS for c in checks)
    pending = [c.name for c in checks if c.state is not State.PASS]
    return f"observing for {elapsed_s:.0f} s: {shown}/{len(checks)} checks shown; pending: {', '.join(pending)}"


def suspect_checks(checks: Sequence[CheckVerdict], fail_bound: float) -> list[tuple[str, float]]:
    """Undecided checks whose failure evidence is strong but not decisive: e_fail ≥ √(1/α_i).

    The evidence is the largest e so far of the check's FAIL tests (``e_max_fail*``); judges
    without e-values (the fixed judge) never have suspects.
    """
    cut = math.sqrt(fail_bound)
    found = []
    for check in checks:
        if check.state in (State.PASS, State.FAIL):
            continue
        peaks = [
            float(value)
            for key, value in check.evidence.items()
            if key.startswith("e_max_fail") and isinstance(value, int | float)
        ]
        if peaks and max(peaks) >= cut:
            found.append((check.name, max(peaks)))
    return found


def extension_reason(suspects: Sequence[tuple[str, float]], fail_bound: float, settings: JudgeSettings) -> str:
    """Why a stage is extended past its window, in one line."""
    details = "; ".join(f"{name} e_fail={value:.3g}" for name, value in suspects)
    return (
        f"window of {settings.max_duration_s:g} s ended with failure evidence strong but not decisive "
        f"({details}; √(1/α_i) = {math.sqrt(fail_bound):.3g} ≤ e_fail < 1/α_i = {fail_bound:.3g}): "
        f"extended by up to {settings.extend_limit_s:g} s (on_inconclusive = extend_if_suspect); "
        "it still fails only at e_fail ≥ 1/α_i"
    )


def conclude(
    settings: JudgeSettings,
    judge: str,
    elapsed_s: float,
    checks: Sequence[CheckVerdict],
    soak_done: bool,
    extended: str = "",
) -> StageVerdict:
    """The final verdict: FAIL, PASS, or INCONCLUSIVE resolved by ``settings.on_inconclusive``.

    "pass_with_warning" gives PASS with warning=True; "fail" gives FAIL; "extend" gives FAIL too,
    because conclude() is called after the extension (settings.observation_limit_s) ran out.
    "extend_if_suspect" gives PASS with a warning, like "pass_with_warning": the stage was
    extended only while a check was suspect (``extended`` says why; empty if it was not), and a
    suspect that never reached 1/α_i is no proof of a regression, so the false-rollback
    guarantee stays α. The reason lists every check without a verdict, with its own explanation.
    """
    checks = tuple(checks)

    def verdict(state: State, reason: str, warning: bool = False) -> StageVerdict:
        return StageVerdict(
            state=state,
            decided=True,
            warning=warning,
            reason=reason,
            elapsed_s=elapsed_s,
            checks=checks,
            judge=judge,
        )

    if any(c.state is State.FAIL for c in checks):
        return verdict(State.FAIL, failed_reason(checks, elapsed_s))
    open_checks = [c for c in checks if c.state not in (State.PASS, State.NOT_APPLICABLE)]
    if not open_checks and soak_done:
        return verdict(State.PASS, f"PASS after {elapsed_s:.0f} s: every check shown")
    details = "; ".join(f"{c.name}: {c.message}" for c in open_checks)
    if not open_checks:
        details = f"min soak of {settings.min_soak_s:g} s not reached"
    head = f"INCONCLUSIVE after {elapsed_s:.0f} s"
    policy = settings.on_inconclusive
    if policy == "extend_if_suspect":
        why = (
            f"after an extension ({extended}) still no verdict"
            if extended
            else "no check was suspect at the window end"
        )
        return verdict(
            State.PASS,
            f"{head}, passed with a warning (on_inconclusive = extend_if_suspect: {why}): "
            f"no regression detected at α = {settings.alpha:g}, but compliance was not shown. "
            f"{details}",
            warning=True,
        )
    if policy == "pass_with_warning":
        return verdict(
            State.PASS,
            f"{head}, passed with a warning (on_inconclusive = pass_with_warning): "
            f"no regression detected at α = {settings.alpha:g}, but compliance was not shown. "
            f"{details}",
            warning=True,
        )
    if policy == "fail":
        return verdict(State.FAIL, f"{head} and on_inconclusive = fail. {details}")
    return verdict(
        State.FAIL,
        f"{head}: still no verdict at the end of the extension (observation limit "
        f"{settings.observation_limit_s:g} s, on_inconclusive = extend). {details}",
    )


CANARY_RESTART = "canary_restart"


def restarted_canary(judge: str, elapsed_s: float, detail: str) -> StageVerdict:
    """FAIL: the canary's counters went backwards, so it restarted (crashed) during the stage. Its
    figures since the restart cannot be compared with the window's, and a release that restarts under
    load is not one to promote."""
    check = CheckVerdict(
        CANARY_RESTART,
        State.FAIL,
        "canary process restarts",
        1.0,
        0.0,
        1.0,
        "restarts",
        {},
        f"the canary restarted during the stage: {detail}",
    )
    return StageVerdict(State.FAIL, True, False, failed_reason((check,), elapsed_s), elapsed_s, (check,), judge)

"""The CheckVerdicts of the share checks: the 5xx rate and each counter ratio (events out of trials).

Both are judged by the same tests (the one-sample SLO tests and the two-sample share test against
production), so they share their evidence and their INCONCLUSIVE explanation; their messages keep each
check's own words (the 5xx rate over requests; a ratio by its counters' names).
"""

from __future__ import annotations

from canary_harness.judge.check_context import (
    CheckContext,
    count_text,
    fmt_e,
    fmt_pct,
    n90,
    warming,
    would_decide,
)
from canary_harness.judge.check_names import ERROR_RATE
from canary_harness.judge.eprocess import BernoulliMixture, beta_confidence_interval
from canary_harness.judge.power import detectable_rate
from canary_harness.judge.ratio_settings import RatioCheck
from canary_harness.judge.verdict import CheckVerdict, EvidenceValue, State


def _share_evidence(ctx: CheckContext, check: str, events: float, trials: float) -> dict[str, EvidenceValue]:
    """What every share check records besides its counts: the bounds, the interval, the peaks."""
    alpha = ctx.engine.settings.alpha
    low, high = beta_confidence_interval(min(events, trials), trials, alpha)
    return {
        "fail_bound": ctx.fail_bound,
        "pass_bound": ctx.pass_bound,
        "interval_low": low,
        "interval_high": high,
        "interval": f"{1 - alpha:.0%} anytime-valid",
        **ctx.peaks(check),
    }


def _undecided(
    ctx: CheckContext,
    evidence: dict[str, EvidenceValue],
    tests: tuple[BernoulliMixture, BernoulliMixture],
    healthy: float,
    trials: float,
    unit: str,
    caught_what: str,
    rate_unit: str,
) -> str:
    """The INCONCLUSIVE suffix: the samples a PASS needed, the regression caught, the rate that decides."""
    fail_test, pass_test = tests
    needed = n90(pass_test, healthy, ctx.engine.beta_i)
    caught = detectable_rate(fail_test, ctx.engine.alpha_i, int(trials))
    evidence.update(n_needed=needed, detectable_regression=caught)
    return (
        f": no verdict; a PASS needed {count_text(needed)} {unit} (n90 at a true {fmt_pct(healthy)}), and this "
        f"stage would have caught {caught_what} ≥ {fmt_pct(caught)} with 90 % probability"
    ) + would_decide(ctx, evidence, needed, trials, rate_unit)


def _running(ctx: CheckContext, head: str, keys: dict[str, str]) -> str:
    """An open check's figure and its two e-values against their bounds."""
    return (
        f"{head}; e_fail={fmt_e(ctx.e(keys['fail_slo']))}, e_pass={fmt_e(ctx.e(keys['pass_slo']))} "
        f"(bounds {fmt_e(ctx.fail_bound)} / {fmt_e(ctx.pass_bound)})"
    )


def error_rate_verdict(ctx: CheckContext) -> CheckVerdict:
    """The 5xx rate: the canary's share of 5xx answers against the SLO and against production's."""
    s = ctx.engine.settings
    errors, requests = ctx.count("canary_errors"), ctx.count("canary_requests")
    p_errors, p_requests = ctx.count("production_errors"), ctx.count("production_requests")
    rate = errors / requests if requests else None
    p_rate = p_errors / p_requests if p_requests else None
    keys = {k: f"{ERROR_RATE}:{k}" for k in ("fail_slo", "fail_relative", "pass_slo")}
    evidence: dict[str, EvidenceValue] = {
        "canary_errors": errors,
        "canary_requests": requests,
        "production_errors": p_errors,
        "production_requests": p_requests,
        "production_rate": p_rate,
        **{f"e_{test}": ctx.e(key) for test, key in keys.items()},
        **_share_evidence(ctx, ERROR_RATE, errors, requests),
    }
    state = ctx.state(ERROR_RATE)
    head = f"5xx rate {fmt_pct(rate)} over {requests:.0f} requests (canary)"
    if state is State.FAIL:
        if ctx.crossed(keys["fail_slo"]):
            message = (
                f"5xx rate {fmt_pct(rate)} > SLO {fmt_pct(s.error_rate_slo)} over {requests:.0f} requests "
                f"(canary); {ctx.decided_by(evidence, keys, 'fail_slo')}"
            )
        else:
            message = (
                f"{head} vs production {fmt_pct(p_rate)} over {p_requests:.0f}: more than "
                f"{s.error_relative_r0:g}× production's; {ctx.decided_by(evidence, keys, 'fail_relative')}"
            )
    elif state is State.PASS:
        message = (
            f"5xx rate {fmt_pct(rate)} < SLO {fmt_pct(s.error_rate_slo)} shown over {requests:.0f} requests "
            f"(canary); {ctx.decided_by(evidence, keys, 'pass_slo')}"
        )
    elif requests == 0:
        message = "5xx rate: no canary requests" + ctx.not_yet() + warming(ctx)
    else:
        message = _running(ctx, f"{head}, SLO {fmt_pct(s.error_rate_slo)}", keys)
    if state is State.INCONCLUSIVE:
        tests = (ctx.engine.error_fail, ctx.engine.error_pass)
        healthy = s.healthy_error_rate
        message += _undecided(ctx, evidence, tests, healthy, requests, "requests", "a 5xx rate", "req/s of the canary")
    return CheckVerdict(
        ERROR_RATE, state, "5xx error rate", rate, s.error_rate_slo, requests, "ratio", evidence, message
    )


def ratio_verdict(ctx: CheckContext, ratio: RatioCheck) -> CheckVerdict:
    """A counter-ratio check: numerator events out of denominator trials against its max (and production's)."""
    name = ratio.check
    events, trials = ctx.count(f"{name}:canary_events"), ctx.count(f"{name}:canary_trials")
    p_events, p_trials = ctx.count(f"{name}:production_events"), ctx.count(f"{name}:production_trials")
    share = min(events, trials) / trials if trials else None
    p_share = p_events / p_trials if p_trials else None
    keys = {test.key.split(":", 1)[1]: test.key for test in ctx.engine.tests_of(name)}
    evidence: dict[str, EvidenceValue] = {
        "numerator": ratio.numerator.text,
        "denominator": ratio.denominator.text,
        "canary_events": events,
        "canary_trials": trials,
        "production_events": p_events,
        "production_trials": p_trials,
        "production_share": p_share,
        "max": ratio.max,
        "relative": ratio.relative,
        **{f"e_{test}": ctx.e(key) for test, key in keys.items()},
        **_share_evidence(ctx, name, events, trials),
    }
    state = ctx.state(name)
    what = f"{ratio.label} {fmt_pct(share)} ({events:.0f} of {trials:.0f}, canary)"
    if state is State.FAIL:
        if ctx.crossed(keys["fail_slo"]):
            message = f"{what} > max {fmt_pct(ratio.max)}; {ctx.decided_by(evidence, keys, 'fail_slo')}"
        else:
            message = (
                f"{what} vs production {fmt_pct(p_share)} ({p_events:.0f} of {p_trials:.0f}): more than "
                f"{ratio.relative:g}× production's; {ctx.decided_by(evidence, keys, 'fail_relative')}"
            )
    elif state is State.PASS:
        message = f"{what} < max {fmt_pct(ratio.max)} shown; {ctx.decided_by(evidence, keys, 'pass_slo')}"
    elif trials == 0:
        message = f"{ratio.label}: no canary {ratio.denominator.name} counted" + ctx.not_yet() + warming(ctx)
    else:
        message = _running(ctx, f"{what}, max {fmt_pct(ratio.max)}", keys)
    if state is State.INCONCLUSIVE:
        tests = (ctx.engine.ratio_fail[name], ctx.engine.ratio_pass[name])
        unit = ratio.denominator.name
        rate_unit = f"{unit}/s of the canary"
        message += _undecided(ctx, evidence, tests, ratio.planned_healthy, trials, unit, "a share", rate_unit)
    return CheckVerdict(name, state, ratio.label, share, ratio.max, trials, "ratio", evidence, message)

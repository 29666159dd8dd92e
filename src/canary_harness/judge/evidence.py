"""The CheckVerdicts of the sequential judge: running figures, e-values and one-line messages.

Every message names the metric, the measured value, the threshold and the sample size; a decided
check adds the e-value and the bound it crossed. An INCONCLUSIVE check says how many samples it
reached, how many a verdict needed, and the smallest regression the stage would have caught with
90 % probability.
"""

from __future__ import annotations

from canary_harness.judge.check_context import (
    CheckContext,
    count_text,
    e_value,
    fmt_e,
    fmt_pct,
    n90,
    seconds,
    warming,
    would_decide,
)
from canary_harness.judge.check_names import RL_LOSS, SCHEMA, latency_check
from canary_harness.judge.eprocess import beta_confidence_interval
from canary_harness.judge.eprocess_engine import Decision, EProcessEngine
from canary_harness.judge.planning_assumptions import (
    latency_exceedance,
    latency_factor_for,
    loss_exceedance,
    loss_factor_for,
)
from canary_harness.judge.policy import turned_off_as_not_applicable
from canary_harness.judge.power import detectable_rate
from canary_harness.judge.rate_evidence import error_rate_verdict, ratio_verdict
from canary_harness.judge.snapshot_ticks import SnapshotFeed
from canary_harness.judge.verdict import CheckVerdict, EvidenceValue, State
from canary_harness.metrics.histogram import histogram_quantile

__all__ = ["build_checks"]


def build_checks(
    engine: EProcessEngine, feed: SnapshotFeed, decision: Decision, final: bool
) -> tuple[CheckVerdict, ...]:
    """One CheckVerdict per check, in report order."""
    ctx = CheckContext(engine, feed, decision, final)
    results = [error_rate_verdict(ctx)]
    results += [_latency(ctx, mode) for mode in engine.modes]
    results += [ratio_verdict(ctx, ratio) for ratio in engine.settings.ratios]
    results += [_schema(ctx), _loss(ctx), _coverage(ctx) if engine.shadow_share > 0 else _split(ctx)]
    return turned_off_as_not_applicable(results, engine.settings)


def _latency(ctx: CheckContext, mode: str) -> CheckVerdict:
    s = ctx.engine.settings
    name = latency_check(mode)
    threshold = s.p95_thresholds[mode]
    over, requests = ctx.count(f"{mode}:canary_over_threshold"), ctx.count(f"{mode}:canary_requests")
    buckets = ctx.feed.canary.latency_buckets.get(mode, ())
    p95 = histogram_quantile(0.95, buckets) if buckets else None
    prod_buckets = ctx.feed.production.latency_buckets.get(mode, ())
    prod_p95 = histogram_quantile(0.95, prod_buckets) if prod_buckets else None
    keys = {k: f"{name}:{k}" for k in ("fail_threshold", "fail_relative", "pass_threshold")}
    evidence: dict[str, EvidenceValue] = {
        "canary_over_threshold": over,
        "canary_requests": requests,
        "exceedance": over / requests if requests else None,
        "production_p95": prod_p95,
        "tau": ctx.feed.tau.get(mode),
        "e_fail_threshold": ctx.e(keys["fail_threshold"]),
        "e_fail_relative": ctx.e(keys["fail_relative"]),
        "e_pass_threshold": ctx.e(keys["pass_threshold"]),
        "fail_bound": ctx.fail_bound,
        "pass_bound": ctx.pass_bound,
        **ctx.peaks(name),
    }
    if requests:
        low, high = beta_confidence_interval(over, requests, s.alpha)
        evidence.update(exceedance_low=low, exceedance_high=high)
    state = ctx.state(name)
    shown = "n/a" if p95 is None else f"{p95:.2f} s"
    if state is State.FAIL:
        if ctx.crossed(keys["fail_threshold"]):
            message = (
                f"p95 latency ({mode}) {shown} > {threshold:g} s over {requests:.0f} requests (canary): "
                f"{over:.0f} slower than {threshold:g} s; {ctx.decided_by(evidence, keys, 'fail_threshold')}"
            )
        else:
            tau = ctx.feed.tau.get(mode)
            message = (
                f"p95 latency ({mode}) {shown} over {requests:.0f} requests (canary), threshold "
                f"{threshold:g} s: slower than production (p95 {seconds(prod_p95, 2)}); requests over "
                f"{seconds(tau)} more than {s.latency_relative_r0:g}× as often; "
                f"{ctx.decided_by(evidence, keys, 'fail_relative')}"
            )
    elif state is State.PASS:
        message = (
            f"p95 latency ({mode}) {shown} ≤ {threshold:g} s shown over {requests:.0f} requests (canary); "
            f"{ctx.decided_by(evidence, keys, 'pass_threshold')}"
        )
    elif requests == 0:
        message = f"p95 latency ({mode}): no canary requests in mode {mode}" + ctx.not_yet() + warming(ctx)
    else:
        message = (
            f"p95 latency ({mode}) {shown} over {requests:.0f} requests (canary), threshold {threshold:g} s; "
            f"e_fail={fmt_e(ctx.e(keys['fail_threshold']))}, e_pass={fmt_e(ctx.e(keys['pass_threshold']))}"
        )
    if state is State.INCONCLUSIVE:
        needed = n90(ctx.engine.latency_pass, latency_exceedance(s, mode), ctx.engine.beta_i)
        caught = detectable_rate(ctx.engine.latency_fail, ctx.engine.alpha_i, int(requests))
        factor = None if caught is None else latency_factor_for(s, mode, caught)
        evidence.update(n_needed=needed, detectable_regression=caught, detectable_latency_factor=factor)
        tail = "n/a"
        if caught is not None and factor is not None:
            tail = f"{fmt_pct(caught)} of requests over {threshold:g} s (≈ +{factor - 1:.0%} latency)"
        message += (
            f": no verdict; a PASS needed {count_text(needed)} requests (n90 for a healthy canary), and this "
            f"stage would have caught {tail} with 90 % probability"
        ) + would_decide(ctx, evidence, needed, requests, f"{mode} req/s of the canary")
    return CheckVerdict(name, state, f"p95 latency ({mode})", p95, threshold, requests, "s", evidence, message)


def _loss(ctx: CheckContext) -> CheckVerdict:
    s = ctx.engine.settings
    pairs, over = ctx.count("loss_blocks"), ctx.count("loss_exceed")
    reference = ctx.feed.loss_reference
    judged = ctx.feed.judged_canary
    ratio = (sum(judged) / len(judged) / reference) if judged and reference else None
    paired = ctx.feed.paired_production
    per_canary = len(paired) / len(judged) if judged else 1.0
    keys = {k: f"{RL_LOSS}:{k}" for k in ("fail", "pass")}
    evidence: dict[str, EvidenceValue] = {
        "pairs": pairs,
        "pairs_over": over,
        "blocks": float(len(judged)),
        "production_median_loss": reference,
        "production_blocks": float(len(ctx.feed.production_blocks.means)),
        "pending_blocks": float(len(ctx.feed.pending_canary)),
        "e_fail": ctx.e(keys["fail"]),
        "e_fail_sign": e_value(float(ctx.engine.loss_parts["sign"])),
        "e_fail_magnitude": e_value(float(ctx.engine.loss_parts["magnitude"])),
        "log_spread": ctx.feed.loss_spread,
        "block_spread_bound": ctx.feed.last_scale,
        "e_pass": ctx.e(keys["pass"]),
        "fail_bound": ctx.fail_bound,
        "pass_bound": ctx.pass_bound,
        **ctx.peaks(RL_LOSS),
    }
    state = ctx.state(RL_LOSS)
    shown = "n/a" if ratio is None else f"{ratio:.2f}×"
    cut = f"{s.loss_ratio:g}× production's"
    head = f"RL loss {shown} production median; canary above {cut} in {over:.0f} of {pairs:.0f} paired blocks"
    if state is State.FAIL:
        message = f"{head}; {ctx.decided_by(evidence, keys, 'fail')}"
    elif state is State.PASS:
        message = f"{head}, shown within budget; {ctx.decided_by(evidence, keys, 'pass')}"
    elif state is State.NOT_APPLICABLE:
        message = (
            "RL loss: not applicable at 100 %: production serves no traffic, so it makes no loss blocks to "
            "compare with (the check is judged at the stages before)"
        )
    elif pairs == 0:
        produced = len(ctx.feed.production_blocks.means)
        why = "no production loss block yet" if produced == 0 else "no canary loss block yet"
        message = f"RL loss: {why} (blocks of {s.loss_block_updates} updates)" + warming(ctx)
    else:
        message = (
            f"{head}; e_fail={fmt_e(ctx.e(keys['fail']))} (sign {fmt_e(evidence['e_fail_sign'])}, "  # type: ignore[arg-type]
            f"magnitude {fmt_e(evidence['e_fail_magnitude'])}), e_pass={fmt_e(ctx.e(keys['pass']))}"  # type: ignore[arg-type]
        )
    if state is State.INCONCLUSIVE:
        needed = n90(ctx.engine.loss_pass, loss_exceedance(s, 1.0, per_canary), ctx.engine.beta_i)
        caught = detectable_rate(ctx.engine.loss_fail, ctx.engine.alpha_i, int(pairs))
        factor = None if caught is None else loss_factor_for(s, caught, per_canary)
        evidence.update(n_needed=needed, detectable_regression=caught, detectable_loss_factor=factor)
        tail = "n/a" if factor is None else f"a loss ≥ {factor:.1f}× production's"
        message += (
            f": no verdict; a PASS needed {count_text(needed)} pairs (n90 for a healthy canary), and this "
            f"stage would have caught {tail} with 90 % probability (by the sign part alone: larger "
            "regressions go faster)"
        ) + would_decide(ctx, evidence, needed, pairs, "loss pairs/s")
    return CheckVerdict(
        RL_LOSS,
        state,
        "RL loss vs production median",
        ratio,
        s.loss_ratio,
        pairs,
        "× production median",
        evidence,
        message,
    )


def _schema(ctx: CheckContext) -> CheckVerdict:
    s = ctx.engine.settings
    failures, briefs = ctx.count("canary_schema_failures"), ctx.count("canary_briefs")
    evidence: dict[str, EvidenceValue] = {
        "canary_failures": failures,
        "canary_briefs": briefs,
        "production_failures": ctx.count("production_schema_failures"),
        "production_briefs": ctx.count("production_briefs"),
        "policy": s.schema_policy,
    }
    key = f"{SCHEMA}:fail_relative"
    if key in ctx.engine.log_e:
        evidence.update(e_fail_relative=ctx.e(key), fail_bound=ctx.fail_bound, **ctx.peaks(SCHEMA))
    state = ctx.state(SCHEMA)
    if state is State.FAIL:
        rule = (
            "zero tolerance"
            if s.schema_policy == "zero_tolerance"
            else f"more often than production; {ctx.decided(key)}"
        )
        message = f"schema failures {failures:.0f} > 0 over {briefs:.0f} briefs (canary): {rule}"
    elif state is State.PASS:
        message = f"schema failures 0 over {briefs:.0f} briefs (canary)"
        if s.schema_policy == "relative":
            message = f"schema failures {failures:.0f} over {briefs:.0f} briefs (canary), not above production's"
    else:
        message = "schema: no llm briefs checked" + (
            " in the whole stage: the schema was never exercised" if ctx.final else " yet"
        )
    return CheckVerdict(SCHEMA, state, "schema failures", failures, 0.0, briefs, "failures", evidence, message)


def _split(ctx: CheckContext) -> CheckVerdict:
    s = ctx.engine.settings
    canary, production = ctx.count("canary_units"), ctx.count("production_units")
    counted = ctx.feed.canary.journeys + ctx.feed.production.journeys > 0
    unit = ctx.feed.canary.split_unit or ("journeys" if counted else "requests")
    total = canary + production
    share = canary / total if total else None
    key, name = ctx.engine.split_key, ctx.engine.split_name
    configured = ctx.feed.weight
    evidence: dict[str, EvidenceValue] = {
        f"canary_{unit}": canary,
        f"production_{unit}": production,
        "configured_share": configured,
        "e_mismatch": ctx.e(key),
        "bound": 1 / s.srm_alpha,
        "misrouted": ctx.count("misrouted"),
        **ctx.peaks(name),
    }
    state = ctx.state(name)
    head = f"canary share {fmt_pct(share)} of {total:.0f} {unit} vs configured {fmt_pct(configured)}"
    if state is State.FAIL:
        evidence["crossed_at_s"] = ctx.at(key)
        proof = (
            f"{ctx.count('misrouted'):.0f} requests on the arm at weight 0"
            if ctx.count("misrouted") > 0
            else ctx.decided(key)
        )
        message = (
            f"sample-ratio mismatch: {head}; {proof}: the traffic controller does not split as set, "
            "so no other verdict of this stage counts"
        )
    elif state is State.PASS:
        message = f"{head}: no mismatch (e={fmt_e(ctx.e(key))})"
    else:
        message = "traffic split: no canary requests" + ctx.not_yet()
    return CheckVerdict(name, state, "canary traffic share", share, configured, total, "ratio", evidence, message)


def _coverage(ctx: CheckContext) -> CheckVerdict:
    """Stage 0: the canary's requests (the copies) against share × production's requests."""
    s, engine = ctx.engine.settings, ctx.engine
    key, name = engine.split_key, engine.split_name
    copies, production = ctx.count("canary_requests"), ctx.count("production_requests")
    coverage = copies / production if production else None
    evidence: dict[str, EvidenceValue] = {
        "canary_requests": copies,
        "production_requests": production,
        "shadow_share": engine.shadow_share,
        "expected_copies": production * engine.shadow_share,
        "e_mismatch": ctx.e(key),
        "bound": 1 / s.srm_alpha,
        **ctx.peaks(name),
    }
    state = ctx.state(name)
    head = (
        f"canary received {copies:.0f} copies for {production:.0f} production requests "
        f"({fmt_pct(coverage)} vs the configured shadow share {fmt_pct(engine.shadow_share)})"
    )
    if state is State.FAIL:
        evidence["crossed_at_s"] = ctx.at(key)
        message = (
            f"mirror coverage mismatch: {head}; {ctx.decided(key)}: NGINX does not copy as set (or the canary "
            "drops copies: too slow, or routes of the shadow drop list), so no other verdict of this stage counts"
        )
    elif state is State.PASS:
        message = f"{head}: coverage as configured (e={fmt_e(ctx.e(key))})"
    else:
        message = "mirror coverage: no copies reached the canary" + ctx.not_yet()
    return CheckVerdict(
        name, state, "canary copies per production request", coverage, engine.shadow_share, production,
        "ratio", evidence, message,
    )  # fmt: skip

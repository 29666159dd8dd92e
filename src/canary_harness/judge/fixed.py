"""The fixed-window judge: the classic runbook gate, judged once at the end of the window.

Kept selectable (``--judge fixed``) for comparison. During the window it only reports running
figures; a schema failure is still zero-tolerance and fails at once. At the end: p95 per mode
≤ threshold, 5xx rate < SLO, no schema failure, canary mean RL loss < ratio × production's, and
the observed canary share within ``split_tolerance`` (relative) of the configured weight. A check
without samples is INCONCLUSIVE, never a silent pass.
"""

from __future__ import annotations

import math

from canary_harness.judge.check_context import fmt_pct
from canary_harness.judge.check_names import COVERAGE, ERROR_RATE, RL_LOSS, SCHEMA, SPLIT, latency_check
from canary_harness.judge.policy import conclude, failed_reason, running_reason, turned_off_as_not_applicable
from canary_harness.judge.ratio_settings import RatioCheck
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.snapshot_ticks import SnapshotFeed
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State
from canary_harness.metrics.histogram import histogram_quantile
from canary_harness.metrics.types import MetricsSnapshot


class FixedJudge:
    """One look at the end of the window with fixed thresholds (see the module docstring)."""

    name = "fixed"

    def __init__(self, settings: JudgeSettings | None = None, shadow_share: float = 0.0) -> None:
        """``shadow_share`` (0..1): a shadow stage; its split check compares the canary's copies with that
        share of production's requests, within ``split_tolerance``."""
        self.settings = settings or JudgeSettings()
        self.shadow_share = shadow_share
        self.feed = SnapshotFeed(self.settings)
        self._decided: StageVerdict | None = None
        self.extension: str | None = None  # the fixed judge has no e-values: never extended

    def observe(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> StageVerdict:
        """Running figures only; a schema failure fails at once."""
        if self._decided is not None:
            return self._decided
        if self.settings.on_inconclusive == "extend_if_suspect" and elapsed_s >= self.settings.max_duration_s:
            # Without e-values nothing is ever suspect: the window end is the end.
            return self.conclude(elapsed_s, canary, production, weight_percent)
        self.feed.push(elapsed_s, canary, production, weight_percent)
        checks = self._checks(weight_percent, final=False)
        if any(c.state is State.FAIL for c in checks):
            self._decided = StageVerdict(
                State.FAIL, True, False, failed_reason(checks, elapsed_s), elapsed_s, checks, self.name
            )
            return self._decided
        return StageVerdict(
            State.RUNNING, False, False, running_reason(checks, elapsed_s), elapsed_s, checks, self.name
        )

    def conclude(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> StageVerdict:
        """Judge the whole window against the fixed thresholds."""
        if self._decided is not None:
            return self._decided
        self.feed.push(elapsed_s, canary, production, weight_percent)
        checks = self._checks(weight_percent, final=True)
        self._decided = conclude(self.settings, self.name, elapsed_s, checks, soak_done=True)
        return self._decided

    # ------------------------------------------------------------------ checks
    def _checks(self, weight_percent: int, final: bool) -> tuple[CheckVerdict, ...]:
        s = self.settings
        results = [self._error_rate(final)]
        results += [self._latency(mode, final) for mode in s.modes]
        results += [self._ratio(ratio, final) for ratio in s.ratios]
        results += [self._schema(final), self._loss(final), self._split(weight_percent, final)]
        return turned_off_as_not_applicable(results, s)

    @staticmethod
    def _state(final: bool, ok: bool) -> State:
        if not final:
            return State.RUNNING
        return State.PASS if ok else State.FAIL

    def _error_rate(self, final: bool) -> CheckVerdict:
        s = self.settings
        window = self.feed.canary
        requests, errors = window.requests, window.errors_5xx
        evidence = {"canary_errors": errors, "canary_requests": requests}
        if requests == 0:
            state = State.INCONCLUSIVE if final else State.RUNNING
            return CheckVerdict(
                ERROR_RATE,
                state,
                "5xx error rate",
                None,
                s.error_rate_slo,
                0.0,
                "ratio",
                evidence,
                "5xx rate: no canary requests" + (" in the window" if final else " yet"),
            )
        rate = errors / requests
        state = self._state(final, rate < s.error_rate_slo)
        relation = {State.PASS: "<", State.FAIL: "≥"}.get(state, "vs")
        message = (
            f"5xx rate {fmt_pct(rate)} {relation} {fmt_pct(s.error_rate_slo)} over {requests:.0f} "
            f"requests (canary, fixed window)"
        )
        return CheckVerdict(
            ERROR_RATE, state, "5xx error rate", rate, s.error_rate_slo, requests, "ratio", evidence, message
        )

    def _latency(self, mode: str, final: bool) -> CheckVerdict:
        threshold = self.settings.p95_thresholds[mode]
        name = latency_check(mode)
        window = self.feed.canary
        requests = window.latency_count(mode)
        p95 = histogram_quantile(0.95, window.latency_buckets[mode]) if requests else None
        evidence = {"canary_requests": requests}
        if p95 is None:
            state = State.INCONCLUSIVE if final else State.RUNNING
            return CheckVerdict(
                name,
                state,
                f"p95 latency ({mode})",
                None,
                threshold,
                0.0,
                "s",
                evidence,
                f"p95 latency ({mode}): no canary requests in mode {mode}" + (" in the window" if final else " yet"),
            )
        state = self._state(final, p95 <= threshold)
        relation = {State.PASS: "≤", State.FAIL: ">"}.get(state, "vs")
        message = (
            f"p95 latency ({mode}) {p95:.2f} s {relation} {threshold:g} s over {requests:.0f} requests "
            f"(canary, fixed window)"
        )
        return CheckVerdict(name, state, f"p95 latency ({mode})", p95, threshold, requests, "s", evidence, message)

    def _ratio(self, ratio: RatioCheck, final: bool) -> CheckVerdict:
        """share < max over the window, and with ``relative`` not above relative × production's share."""
        canary, production = self.feed.canary.counters, self.feed.production.counters
        num, den = ratio.numerator.text, ratio.denominator.text
        events, trials = canary.get(num, 0.0), canary.get(den, 0.0)
        p_events, p_trials = production.get(num, 0.0), production.get(den, 0.0)
        evidence = {"canary_events": events, "canary_trials": trials, "production_events": p_events,
                    "production_trials": p_trials}  # fmt: skip
        if trials == 0:
            state = State.INCONCLUSIVE if final else State.RUNNING
            message = f"{ratio.label}: no canary {ratio.denominator.name} counted" + (
                " in the window" if final else " yet"
            )
            return CheckVerdict(ratio.check, state, ratio.label, None, ratio.max, 0.0, "ratio", evidence, message)
        share = min(events, trials) / trials
        p_share = p_events / p_trials if p_trials else None
        too_high = ratio.relative is not None and p_share is not None and share > ratio.relative * p_share
        state = self._state(final, share < ratio.max and not (too_high and share > 0))
        relation = {State.PASS: "<", State.FAIL: "≥"}.get(state, "vs")
        message = (
            f"{ratio.label} {fmt_pct(share)} {relation} max {fmt_pct(ratio.max)} ({events:.0f} of {trials:.0f}, "
            f"canary, fixed window)"
        )
        if ratio.relative is not None:
            message += f"; production {fmt_pct(p_share)}, relative limit {ratio.relative:g}×"
        return CheckVerdict(ratio.check, state, ratio.label, share, ratio.max, trials, "ratio", evidence, message)

    def _schema(self, final: bool) -> CheckVerdict:
        raw = self.feed.canary_raw
        failures, briefs = raw.schema_failures, raw.briefs
        evidence = {"canary_failures": failures, "canary_briefs": briefs}
        if failures > 0:
            state, message = (
                State.FAIL,
                f"schema failures {failures:.0f} > 0 over {briefs:.0f} briefs (canary)",
            )
        elif briefs == 0:
            state = State.INCONCLUSIVE if final else State.RUNNING
            message = "schema: no llm briefs checked" + (" in the window" if final else " yet")
        else:
            state = State.PASS if final else State.RUNNING
            message = f"schema failures 0 over {briefs:.0f} briefs (canary)"
        return CheckVerdict(SCHEMA, state, "schema failures", failures, 0.0, briefs, "failures", evidence, message)

    def _loss(self, final: bool) -> CheckVerdict:
        s = self.settings
        canary, production = self.feed.canary, self.feed.production
        evidence = {"canary_updates": canary.rl_updates, "production_updates": production.rl_updates}

        def undecided(message: str) -> CheckVerdict:
            state = State.INCONCLUSIVE if final else State.RUNNING
            return CheckVerdict(
                RL_LOSS,
                state,
                "RL loss vs production mean",
                None,
                s.loss_ratio,
                canary.rl_updates,
                "× production mean",
                evidence,
                message,
            )

        if canary.rl_updates == 0 or production.rl_updates == 0:
            return undecided("RL loss: no RL updates on " + ("the canary" if canary.rl_updates == 0 else "production"))
        canary_mean = canary.rl_loss_sum / canary.rl_updates
        production_mean = production.rl_loss_sum / production.rl_updates
        evidence.update(canary_mean=canary_mean, production_mean=production_mean)
        if not math.isfinite(canary_mean):
            return CheckVerdict(
                RL_LOSS,
                State.FAIL,
                "RL loss vs production mean",
                None,
                s.loss_ratio,
                canary.rl_updates,
                "× production mean",
                evidence,
                f"RL loss: the canary's mean loss is {canary_mean} over {canary.rl_updates:.0f} "
                "updates (non-finite: the model diverged)",
            )
        if not math.isfinite(production_mean):
            return undecided(f"RL loss: production's mean loss is {production_mean}, no reference")
        if production_mean <= 0:
            return undecided(f"RL loss: production mean loss {production_mean:g} ≤ 0, ratio undefined")
        ratio = canary_mean / production_mean
        state = self._state(final, ratio < s.loss_ratio)
        relation = {State.PASS: "<", State.FAIL: "≥"}.get(state, "vs")
        message = (
            f"RL loss {ratio:.2f}× production mean {relation} {s.loss_ratio:g}× over "
            f"{canary.rl_updates:.0f} updates (canary, fixed window)"
        )
        return CheckVerdict(
            RL_LOSS,
            state,
            "RL loss vs production mean",
            ratio,
            s.loss_ratio,
            canary.rl_updates,
            "× production mean",
            evidence,
            message,
        )

    def _coverage(self, final: bool) -> CheckVerdict:
        s, share = self.settings, self.shadow_share
        copies, production = self.feed.canary.requests, self.feed.production.requests
        evidence = {"canary_requests": copies, "production_requests": production, "tolerance": s.split_tolerance}
        if production == 0:
            state = State.INCONCLUSIVE if final else State.RUNNING
            message = "mirror coverage: no production requests" + (" in the window" if final else " yet")
            return CheckVerdict(COVERAGE, state, "canary copies per production request", None, share, 0.0,
                                "ratio", evidence, message)  # fmt: skip
        coverage = copies / production
        state = self._state(final, abs(coverage / share - 1) <= s.split_tolerance)
        relation = {State.PASS: "within", State.FAIL: "outside"}.get(state, "vs")
        message = (
            f"canary received {copies:.0f} copies for {production:.0f} production requests ({fmt_pct(coverage)}) "
            f"{relation} ±{s.split_tolerance:.0%} of the shadow share {fmt_pct(share)}"
        )
        return CheckVerdict(COVERAGE, state, "canary copies per production request", coverage, share, production,
                            "ratio", evidence, message)  # fmt: skip

    def _split(self, weight_percent: int, final: bool) -> CheckVerdict:
        s = self.settings
        if self.shadow_share > 0:
            return self._coverage(final)
        canary, production = self.feed.canary.requests, self.feed.production.requests
        total = canary + production
        weight = weight_percent / 100.0
        evidence = {
            "canary_requests": canary,
            "production_requests": production,
            "tolerance": s.split_tolerance,
        }
        if total == 0:
            state = State.INCONCLUSIVE if final else State.RUNNING
            return CheckVerdict(
                SPLIT,
                state,
                "canary traffic share",
                None,
                weight,
                0.0,
                "ratio",
                evidence,
                "traffic split: no requests" + (" in the window" if final else " yet"),
            )
        share = canary / total
        if weight in (0.0, 1.0):
            ok = share == weight
        else:
            ok = abs(share / weight - 1) <= s.split_tolerance
        state = self._state(final, ok)
        relation = {State.PASS: "within", State.FAIL: "outside"}.get(state, "vs")
        message = (
            f"canary share {fmt_pct(share)} of {total:.0f} requests {relation} ±{s.split_tolerance:.0%} "
            f"of the configured {fmt_pct(weight)}"
        )
        return CheckVerdict(SPLIT, state, "canary traffic share", share, weight, total, "ratio", evidence, message)

"""The sequential judge (the default): anytime-valid e-processes, stop as soon as evidence allows."""

from __future__ import annotations

from canary_harness.judge.check_names import RL_LOSS
from canary_harness.judge.eprocess_engine import Decision, EProcessEngine
from canary_harness.judge.evidence import build_checks
from canary_harness.judge.policy import (
    conclude,
    extension_reason,
    failed_reason,
    running_reason,
    suspect_checks,
)
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.snapshot_ticks import SnapshotFeed
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State
from canary_harness.metrics.types import MetricsSnapshot


class SequentialJudge:
    """Judges one stage with the e-processes of docs/judge.md.

    FAIL as soon as any FAIL test crosses 1/α_i (or a zero-tolerance count is non-zero, or the
    split mismatches); PASS once every check is shown and ``min_soak_s`` passed (early unless
    ``early_pass`` is off). Decided verdicts are final: later calls return them unchanged.
    """

    name = "sequential"

    def __init__(self, settings: JudgeSettings | None = None, shadow_share: float = 0.0) -> None:
        """``shadow_share`` (0..1): judge a shadow stage (stage 0), whose canary sees copies of that share of
        production's requests; the split check is then the mirror-coverage check."""
        self.settings = settings or JudgeSettings()
        self.engine = EProcessEngine(self.settings, shadow_share=shadow_share)
        self.feed = SnapshotFeed(self.settings)
        self._decided: StageVerdict | None = None
        # Why the stage runs past its window (on_inconclusive = extend_if_suspect); None until then.
        self.extension: str | None = None

    def _update(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> Decision:
        tick = self.feed.push(elapsed_s, canary, production, weight_percent)
        self.engine.update(tick, elapsed_s)
        return self.engine.decide(elapsed_s)

    def observe(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> StageVerdict:
        """Update with this tick's deltas since stage start; FAIL at once, PASS early if allowed."""
        if self._decided is not None:
            return self._decided
        decision = self._update(elapsed_s, canary, production, weight_percent)
        checks = self._with_nonfinite_loss(build_checks(self.engine, self.feed, decision, final=False))
        # During an "extend" extension a complete PASS ends the stage even without early_pass.
        may_pass = self.settings.early_pass or elapsed_s >= self.settings.max_duration_s
        if bool(decision.stage_fail) or self.feed.canary_nonfinite_loss is not None:
            reason = failed_reason(checks, elapsed_s)
            if self.extension:
                reason = f"{reason} (in the extension: {self.extension})"
            self._decided = StageVerdict(State.FAIL, True, False, reason, elapsed_s, checks, self.name)
            return self._decided
        if self._window_over(elapsed_s):
            final = build_checks(self.engine, self.feed, decision, final=True)
            suspects = suspect_checks(final, 1 / self.engine.alpha_i)
            if not suspects:
                self._decided = conclude(self.settings, self.name, elapsed_s, final, soak_done=True)
                return self._decided
            self.extension = extension_reason(suspects, 1 / self.engine.alpha_i, self.settings)
        if bool(decision.stage_pass) and may_pass:
            self._decided = StageVerdict(
                State.PASS,
                True,
                False,
                f"PASS after {elapsed_s:.0f} s: every check shown"
                + (f" (in the extension: {self.extension})" if self.extension else ""),
                elapsed_s,
                checks,
                self.name,
            )
            return self._decided
        reason = running_reason(checks, elapsed_s)
        if self.extension:
            reason = f"{reason}; EXTENDED: {self.extension}"
        return StageVerdict(State.RUNNING, False, False, reason, elapsed_s, checks, self.name)

    def _window_over(self, elapsed_s: float) -> bool:
        """Whether this tick is the window end of an extend_if_suspect stage not yet extended."""
        return (
            self.settings.on_inconclusive == "extend_if_suspect"
            and self.extension is None
            and elapsed_s >= self.settings.max_duration_s
        )

    def conclude(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> StageVerdict:
        """The final verdict at the end of the window; INCONCLUSIVE is resolved by the policy."""
        if self._decided is not None:
            return self._decided
        decision = self._update(elapsed_s, canary, production, weight_percent)
        checks = self._with_nonfinite_loss(build_checks(self.engine, self.feed, decision, final=True))
        if self.feed.canary_nonfinite_loss is not None:
            self._decided = StageVerdict(
                State.FAIL, True, False, failed_reason(checks, elapsed_s), elapsed_s, checks, self.name
            )
            return self._decided
        self._decided = conclude(
            self.settings,
            self.name,
            elapsed_s,
            checks,
            soak_done=elapsed_s >= self.settings.min_soak_s,
            extended=self.extension or "",
        )
        return self._decided

    def _with_nonfinite_loss(self, checks: tuple[CheckVerdict, ...]) -> tuple[CheckVerdict, ...]:
        """The RL-loss check turned FAIL when the canary's own loss is NaN/±Inf: zero tolerance, like a
        schema failure (a NaN block mean would otherwise compare as healthy and could even PASS)."""
        value = self.feed.canary_nonfinite_loss
        if value is None:
            return checks
        updates = self.feed.canary_raw.rl_updates
        failed = CheckVerdict(
            RL_LOSS,
            State.FAIL,
            "RL loss vs production median",
            None,
            self.settings.loss_ratio,
            updates,
            "× production median",
            {"canary_loss_sum": None},
            f"RL loss: the canary's loss sum is {value} after {updates:.0f} updates (non-finite: the model diverged)",
        )
        return tuple(failed if check.name == RL_LOSS else check for check in checks)

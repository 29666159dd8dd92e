"""What every check's message is made of: the judge's state at one moment and how to word it.

``CheckContext`` reads the engine (counts, e-values, crossings) for one check at a time;
the helpers format e-values, shares and seconds, and explain what an undecided check would
have needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from canary_harness.judge.eprocess import BernoulliMixture
from canary_harness.judge.eprocess_engine import Decision, EProcessEngine
from canary_harness.judge.power import sample_sizes
from canary_harness.judge.snapshot_ticks import SnapshotFeed
from canary_harness.judge.verdict import EvidenceValue, State

_MAX_LOG_E = 700.0  # keeps exp() finite for display


def e_value(log_e: float) -> float:
    """An e-value from its logarithm, capped so that it stays a finite float."""
    return math.exp(min(float(log_e), _MAX_LOG_E))


def fmt_e(value: float) -> str:
    """Compact e-value text: 3.1, 312, 4.2e+05."""
    return f"{value:.3g}" if value < 1e5 else f"{value:.1e}"


def fmt_pct(value: float | None) -> str:
    """A share as a percentage, or "n/a"."""
    return "n/a" if value is None else f"{value:.2%}"


@lru_cache(maxsize=64)
def n90(test: BernoulliMixture, rate: float, budget: float) -> int | None:
    """The sample size at which ``test`` crosses 1/``budget`` in 90 % of runs at the true ``rate``."""
    return sample_sizes(test, rate, budget, limit=100_000).n90


@dataclass
class CheckContext:
    """The engine, feed and decision of one moment, as the check messages read them."""

    engine: EProcessEngine
    feed: SnapshotFeed
    decision: Decision
    final: bool

    def count(self, name: str) -> float:
        return float(self.engine.counts[name])

    def e(self, key: str) -> float:
        return e_value(float(self.engine.log_e[key]))

    def peak(self, key: str) -> float:
        return e_value(float(self.engine.peak[key]))

    def peaks(self, check: str) -> dict[str, EvidenceValue]:
        """The largest e so far of each test of ``check``, as ``e_max_<test>``."""
        return {f"e_max_{spec.key.split(':', 1)[1]}": self.peak(spec.key) for spec in self.engine.tests_of(check)}

    def decided(self, key: str) -> str:
        """ "e=… ≥ 1/α=…" with the largest e so far (crossings are final even if e fell since)."""
        spec = self.engine.spec(key)
        bound, name = (self.pass_bound, "β") if spec.role == "pass" else (self.fail_bound, "α")
        if spec.role == "split":
            bound, name = 1 / self.engine.settings.srm_alpha, "α_srm"
        return f"e={fmt_e(self.peak(key))} ≥ 1/{name}={fmt_e(bound)} at {self.at(key) or 0:.0f} s"

    def decided_by(self, evidence: dict[str, EvidenceValue], keys: Mapping[str, str], test: str) -> str:
        """Record which test decided the check and when; "e=… ≥ 1/α=… at t s" for its message."""
        evidence["decided_by"], evidence["crossed_at_s"] = test, self.at(keys[test])
        return self.decided(keys[test])

    def not_yet(self) -> str:
        """ " in the whole stage" at the end, " yet" while it runs."""
        return " in the whole stage" if self.final else " yet"

    def crossed(self, key: str) -> bool:
        return bool(self.engine.crossed[key])

    def at(self, key: str) -> float | None:
        value = float(self.engine.crossed_at[key])
        return None if math.isnan(value) else value

    def state(self, check: str) -> State:
        if bool(self.decision.check_fail[check]):
            return State.FAIL
        if bool(self.decision.check_pass[check]):
            return State.PASS
        if bool(self.decision.not_applicable.get(check, False)):
            return State.NOT_APPLICABLE
        return State.INCONCLUSIVE if self.final else State.RUNNING

    @property
    def fail_bound(self) -> float:
        return 1 / self.engine.alpha_i

    @property
    def pass_bound(self) -> float:
        return 1 / self.engine.beta_i


def warming(ctx: CheckContext) -> str:
    """ " (warm-up of N s excluded)" while the warm-up runs."""
    return "" if ctx.feed.warmed_up else f" (warm-up of {ctx.engine.settings.warmup_s:g} s excluded)"


def would_decide(
    ctx: CheckContext, evidence: dict[str, EvidenceValue], needed: int | None, got: float, unit: str
) -> str:
    """What would have decided an undecided check: a longer window at the measured rate, or a higher rate.

    Sets ``window_needed_s`` and ``rate_needed`` in ``evidence`` and returns the sentence.
    """
    observed = ctx.feed.observed_s
    if needed is None or observed <= 0:
        return ""
    rate_needed = needed / observed
    evidence["rate_needed"] = rate_needed
    text = f"; in this window it needed ~{rate_needed:.3g} {unit}"
    if got > 0:
        rate = got / observed
        window = ctx.engine.settings.warmup_s + needed / rate
        evidence["window_needed_s"] = window
        text += f" (measured {rate:.3g}), or at the measured rate a window of ~{window:.0f} s"
    return text


def seconds(value: float | None, digits: int | None = None) -> str:
    """Seconds as text, or "n/a"."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f} s" if digits is not None else f"{value:g} s"


def count_text(value: int | None) -> str:
    """A sample size as text ("~420"), or "more than 100000" when none was found."""
    return "more than 100000" if value is None else f"~{value}"

"""Verdicts: plain frozen records of what a judge decided and why, JSON-serialisable.

A stage's result crosses process boundaries (pytest-xdist workers read it from a JSON file), so
both records have a ``to_dict()`` / ``from_dict()`` pair that round-trips exactly. Non-finite
floats are stored as None so the JSON stays strict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

EvidenceValue = float | str | None


class State(StrEnum):
    """State of one check or of a whole stage."""

    RUNNING = "RUNNING"
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    # A check that cannot be judged in this stage by construction (the RL loss at 100 %: production
    # serves no traffic, so there is nothing to compare with). Never a PASS: it is said as such.
    NOT_APPLICABLE = "N/A"


def _clean(value: Any) -> EvidenceValue:
    """A JSON-safe evidence value: finite floats, strings or None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return float(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _optional_float(value: Any) -> float | None:
    return None if value is None else _clean(value)  # type: ignore[return-value]


@dataclass(frozen=True)
class CheckVerdict:
    """One check of a stage (e.g. "error_rate", "p95_latency[creative]", "rl_loss", "traffic_split").

    ``measured`` / ``threshold`` are in ``unit``; ``sample_size`` is what the check has seen
    (requests, blocks, briefs); ``evidence`` holds e-values, counts, estimates and intervals for a
    report; ``message`` is one line naming the metric, measured value, threshold and sample size.
    """

    name: str
    state: State
    metric: str
    measured: float | None
    threshold: float | None
    sample_size: float
    unit: str
    evidence: Mapping[str, EvidenceValue] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", State(self.state))
        object.__setattr__(self, "measured", _optional_float(self.measured))
        object.__setattr__(self, "threshold", _optional_float(self.threshold))
        object.__setattr__(self, "evidence", {str(k): _clean(v) for k, v in self.evidence.items()})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "state": self.state.value,
            "metric": self.metric,
            "measured": self.measured,
            "threshold": self.threshold,
            "sample_size": _clean(self.sample_size),
            "unit": self.unit,
            "evidence": dict(self.evidence),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckVerdict:
        """The inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            state=State(data["state"]),
            metric=str(data["metric"]),
            measured=data.get("measured"),
            threshold=data.get("threshold"),
            sample_size=float(data.get("sample_size") or 0.0),
            unit=str(data.get("unit", "")),
            evidence=dict(data.get("evidence", {})),
            message=str(data.get("message", "")),
        )


# The former name, kept so that release checks written against it (``from canary_harness.judge.verdict
# import CheckResult``) keep importing; new code says CheckVerdict (precheck's lines are ChecklistItem).
CheckResult = CheckVerdict


@dataclass(frozen=True)
class StageVerdict:
    """A judge's answer for a stage at one moment.

    ``decided`` is True once the stage may end (FAIL at once, or an early PASS) and always after
    ``conclude``. ``warning`` marks a PASS that was not proven (the pass_with_warning policy);
    ``reason`` explains the state in one or a few lines; ``judge`` is "sequential" or "fixed".
    """

    state: State
    decided: bool
    warning: bool
    reason: str
    elapsed_s: float
    checks: tuple[CheckVerdict, ...]
    judge: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", State(self.state))
        object.__setattr__(self, "checks", tuple(self.checks))

    def check(self, name: str) -> CheckVerdict:
        """The check called ``name``; KeyError listing the known names otherwise."""
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(f"no check {name!r} in this verdict; checks: {[c.name for c in self.checks]}")

    @property
    def failed_checks(self) -> tuple[CheckVerdict, ...]:
        """The checks in state FAIL."""
        return tuple(c for c in self.checks if c.state is State.FAIL)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "state": self.state.value,
            "decided": self.decided,
            "warning": self.warning,
            "reason": self.reason,
            "elapsed_s": _clean(self.elapsed_s),
            "checks": [c.to_dict() for c in self.checks],
            "judge": self.judge,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageVerdict:
        """The inverse of :meth:`to_dict`."""
        return cls(
            state=State(data["state"]),
            decided=bool(data["decided"]),
            warning=bool(data.get("warning", False)),
            reason=str(data.get("reason", "")),
            elapsed_s=float(data.get("elapsed_s") or 0.0),
            checks=tuple(CheckVerdict.from_dict(c) for c in data.get("checks", [])),
            judge=str(data.get("judge", "")),
        )


def outcome_summary(verdict: StageVerdict) -> str:
    """The stage's outcome in the words of a release manager, never overstating it.

    "passed: every check decided PASS" (naming the checks not applicable in the stage, e.g. the RL
    loss at 100 %), "passed undecided (N checks without evidence; see
    warnings)" for a PASS that some check could not prove (on_inconclusive let it through), or
    "failed".
    """
    if verdict.state is State.FAIL:
        return "failed"
    if verdict.state is not State.PASS:
        return f"not decided ({verdict.state.value})"
    judged = [check for check in verdict.checks if check.state is not State.NOT_APPLICABLE]
    skipped = [check.name for check in verdict.checks if check.state is State.NOT_APPLICABLE]
    undecided = [check.name for check in judged if check.state is not State.PASS]
    if not undecided and not verdict.warning:
        aside = f" (not applicable in this stage: {', '.join(skipped)})" if skipped else ""
        return f"passed: every check decided PASS{aside}"
    count = len(undecided)
    names = f": {', '.join(undecided)}" if undecided else ""
    return f"passed undecided ({count} check{'' if count == 1 else 's'} without evidence{names}; see warnings)"

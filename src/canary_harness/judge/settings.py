"""Judge settings: error budgets, thresholds, minimum detectable effects and stage timing.

Read from the ``[judge]`` table of canary.toml with :meth:`JudgeSettings.from_mapping`; every bad
value raises ConfigError naming the key, the value and where it came from. Defaults are the classic
release thresholds with α = 1 % (false-rollback budget per stage) and β = 5 %.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from canary_harness.config import MODES
from canary_harness.errors import ConfigError
from canary_harness.judge.ratio_settings import RATIO, RatioCheck, ratios_from_list

ON_INCONCLUSIVE = ("pass_with_warning", "fail", "extend", "extend_if_suspect")
# The families of checks a stage can run; a target may turn some off (a service without LLM briefs has no
# schema check): those are reported N/A and neither hold nor fail the stage.
CHECK_FAMILIES = ("error_rate", "latency", "schema_failures", "rl_loss", "traffic_split", "ratio")
_GROUP_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SCHEMA_POLICIES = ("zero_tolerance", "relative")
# p95 means at most 5 % of requests may be slower than the threshold.
LATENCY_TAIL = 0.05


def _default_thresholds() -> dict[str, float]:
    return {"fast": 2.5, "balanced": 3.2, "creative": 4.5}


@dataclass(frozen=True)
class JudgeSettings:
    """Everything the judges and the planner need; immutable and validated on construction.

    Error budgets: ``alpha`` is the false-rollback budget of one stage (shared by the FAIL tests,
    Bonferroni), ``beta`` the budget of a wrong early PASS (shared by the PASS tests), ``srm_alpha``
    the budget of the sample-ratio-mismatch check on the split.

    Thresholds: ``p95_thresholds`` per LLM mode (seconds; must be latency bucket edges),
    ``error_rate_slo`` (5xx share), ``loss_ratio`` (a canary RL-loss block is bad above
    ``loss_ratio`` × production's median block loss), ``error_relative_r0`` / ``latency_relative_r0``
    (the canary/production ratio the relative tests tolerate).

    Minimum detectable effects (what the planner sizes a stage for): ``mde_error_rate`` (canary 5xx
    share), ``mde_latency_factor`` (canary latency × factor), ``mde_loss_factor`` (canary loss ×
    factor). Planning assumptions for a healthy canary: ``healthy_error_rate``, ``healthy_p95_ratio``
    (healthy p95 / threshold), ``latency_sigma`` (log-normal spread of latency), ``loss_sigma``
    (log-normal spread of block losses), ``loss_block_s`` (seconds per loss block).

    Timing: ``min_soak_s`` before a PASS may end the stage, ``max_duration_s`` (the observation
    period), ``warmup_s`` excluded at the start, ``tick_s`` (scrape interval), ``early_pass``,
    ``on_inconclusive`` ("pass_with_warning" | "fail" | "extend" | "extend_if_suspect") and
    ``extend_limit_s`` (extra seconds an "extend" stage may run, still undecided after it the stage
    FAILs; under "extend_if_suspect" only a stage with a suspect check — e_fail ≥ √(1/α_i) at the
    window end — runs on, failing only at e_fail ≥ 1/α_i and passing with a warning otherwise).

    Mechanics: ``loss_block_updates`` (k RL updates per loss block; canary blocks are judged in
    pairs with fresh production blocks), ``loss_reference_blocks`` (production blocks before their
    median is shown as the reference in messages and the report; the tests do not wait for it),
    ``tau_min_requests``
    (production requests of a mode before its p95 is frozen as the relative test's cut-off),
    ``schema_policy`` ("zero_tolerance": the first schema failure fails the stage; "relative":
    compare with production's base rate), ``split_tolerance`` (fixed judge: allowed relative
    deviation of the observed canary share from the configured weight), ``checks`` (the families of
    checks that run, of CHECK_FAMILIES; the others are N/A). ``p95_thresholds`` keys are latency groups:
    fragrance-ai's LLM modes, or any group a target's metrics are split by. ``ratios``: the counter-ratio
    checks (``[[judge.ratios]]``, judge/ratio_settings.py), family "ratio".
    """

    alpha: float = 0.01
    beta: float = 0.05
    srm_alpha: float = 0.001
    p95_thresholds: Mapping[str, float] = field(default_factory=_default_thresholds)
    error_rate_slo: float = 0.005
    loss_ratio: float = 2.0
    error_relative_r0: float = 1.0
    latency_relative_r0: float = 1.5
    mde_error_rate: float = 0.03
    mde_latency_factor: float = 1.4
    mde_loss_factor: float = 3.0
    healthy_error_rate: float = 0.002
    healthy_p95_ratio: float = 0.84
    latency_sigma: float = 0.45
    # Planning defaults for blocks of one update: the reference service makes ~0.8 updates/s per arm
    # (4-update blocks every 5 s with spread 0.3 before blocks became single updates).
    loss_sigma: float = 0.6
    loss_block_s: float = 1.25
    min_soak_s: float = 60.0
    max_duration_s: float = 900.0
    warmup_s: float = 0.0
    tick_s: float = 1.0
    early_pass: bool = True
    on_inconclusive: str = "extend_if_suspect"
    extend_limit_s: float = 900.0
    loss_block_updates: int = 1
    loss_reference_blocks: int = 8
    tau_min_requests: int = 200
    schema_policy: str = "zero_tolerance"
    split_tolerance: float = 0.25
    checks: tuple[str, ...] = CHECK_FAMILIES
    ratios: tuple[RatioCheck, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "p95_thresholds", dict(self.p95_thresholds))
        for name, check in _RANGE_CHECKS.items():
            value = getattr(self, name)
            try:
                problem = check(value)
            except TypeError:
                problem = "has the wrong type"
            if problem:
                raise ConfigError(f"judge setting {name!r} = {value!r}: {problem}")
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "ratios", tuple(self.ratios))
        unknown_checks = [check for check in self.checks if check not in CHECK_FAMILIES]
        if unknown_checks or not self.checks:
            raise ConfigError(
                f"judge setting 'checks' = {list(self.checks)!r}: must name some of {', '.join(CHECK_FAMILIES)}"
            )
        for mode, threshold in self.p95_thresholds.items():
            if not _GROUP_RE.match(mode):
                raise ConfigError(
                    f"judge setting 'p95_thresholds' has group {mode!r}: a latency group (an LLM mode such as "
                    f"{'/'.join(MODES)}, or any name of letters, digits, '_.:-')"
                )
            if not _finite_positive(threshold):
                raise ConfigError(
                    f"judge setting 'p95_thresholds.{mode}' = {threshold!r}: must be a positive number of seconds"
                )
        if not self.p95_thresholds:
            raise ConfigError("judge setting 'p95_thresholds' is empty: give at least one mode's threshold")
        self._cross_checks()

    def _cross_checks(self) -> None:
        pairs = (
            (self.healthy_error_rate < self.error_rate_slo, "healthy_error_rate", "below error_rate_slo"),
            (self.mde_error_rate > self.error_rate_slo, "mde_error_rate", "above error_rate_slo"),
            (self.min_soak_s <= self.max_duration_s, "min_soak_s", "at most max_duration_s"),
            (self.warmup_s < self.max_duration_s, "warmup_s", "below max_duration_s"),
        )
        for ok, name, rule in pairs:
            if not ok:
                raise ConfigError(f"judge setting {name!r} = {getattr(self, name)!r}: must be {rule}")
        if self.ratios and RATIO not in self.checks:
            # Declared checks that would never gate (a profile's checks copied without "ratio") are a trap.
            declared = ", ".join(ratio.name for ratio in self.ratios)
            raise ConfigError(
                f"judge setting 'checks' = {list(self.checks)!r} leaves out {RATIO!r} while [[judge.ratios]] declares "
                f"{declared}: add {RATIO!r} to checks, or set ratios = [] to turn them off"
            )

    # ------------------------------------------------------------------ derived
    @property
    def observation_limit_s(self) -> float:
        """How long the observation loop may run: max_duration_s, plus extend_limit_s under the extend policies."""
        extra = self.extend_limit_s if self.on_inconclusive in ("extend", "extend_if_suspect") else 0.0
        return self.max_duration_s + extra

    @property
    def modes(self) -> tuple[str, ...]:
        """The latency groups judged (those with a p95 threshold): LLM modes first, then the others as given."""
        return (
            *(mode for mode in MODES if mode in self.p95_thresholds),
            *(group for group in self.p95_thresholds if group not in MODES),
        )

    def replace(self, **changes: Any) -> JudgeSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> JudgeSettings:
        """Settings from a canary.toml ``[judge]`` table; ConfigError names key, value and ``source``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"judge settings ({source}): must be a table, got {data!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(
                    f"unknown judge setting {key!r} ({source}); known settings: {', '.join(sorted(known))}"
                )
            kwargs[key] = (
                ratios_from_list(raw, source) if key == "ratios" else _parse_value(key, raw, _field_kind(key), source)
            )
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{exc} ({source})") from None


# ---------------------------------------------------------------------- validation tables
def _finite_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _open_unit(upper: float = 1.0) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return "" if 0 < value < upper else f"must be a number in (0, {upper:g})"

    return check


def _at_least(lower: float, strict: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        ok = value > lower if strict else value >= lower
        return "" if ok and math.isfinite(value) else f"must be a number {'>' if strict else '≥'} {lower:g}"

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return "" if value in choices else f"must be one of {', '.join(choices)}"

    return check


_RANGE_CHECKS: dict[str, Callable[[Any], str]] = {
    "alpha": _open_unit(0.5),
    "beta": _open_unit(0.5),
    "srm_alpha": _open_unit(0.5),
    "error_rate_slo": _open_unit(),
    "loss_ratio": _at_least(0, strict=True),
    "error_relative_r0": _at_least(1),
    "latency_relative_r0": _at_least(1),
    "mde_error_rate": _open_unit(),
    "mde_latency_factor": _at_least(1, strict=True),
    "mde_loss_factor": _at_least(0, strict=True),
    "healthy_error_rate": _open_unit(),
    "healthy_p95_ratio": _open_unit(),
    "latency_sigma": _at_least(0, strict=True),
    "loss_sigma": _at_least(0, strict=True),
    "loss_block_s": _at_least(0, strict=True),
    "min_soak_s": _at_least(0),
    "max_duration_s": _at_least(0, strict=True),
    "warmup_s": _at_least(0),
    "tick_s": _at_least(0, strict=True),
    "on_inconclusive": _one_of(ON_INCONCLUSIVE),
    "extend_limit_s": _at_least(0),
    "loss_block_updates": _at_least(1),
    "loss_reference_blocks": _at_least(1),
    "tau_min_requests": _at_least(1),
    "schema_policy": _one_of(SCHEMA_POLICIES),
    "split_tolerance": _open_unit(),
}

_INT_FIELDS = frozenset({"loss_block_updates", "loss_reference_blocks", "tau_min_requests"})
_BOOL_FIELDS = frozenset({"early_pass"})
_STR_FIELDS = frozenset({"on_inconclusive", "schema_policy"})
_TABLE_FIELDS = frozenset({"p95_thresholds"})
_LIST_FIELDS = frozenset({"checks"})


def _field_kind(name: str) -> str:
    for kind, names in (
        ("int", _INT_FIELDS),
        ("bool", _BOOL_FIELDS),
        ("str", _STR_FIELDS),
        ("table", _TABLE_FIELDS),
        ("list", _LIST_FIELDS),
    ):
        if name in names:
            return kind
    return "float"


def _parse_value(key: str, raw: Any, kind: str, source: str) -> Any:
    """Type-check one raw TOML value; ranges are checked by the dataclass itself."""
    where = f"judge setting {key!r} = {raw!r} ({source})"
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(f"{where}: must be true or false")
        return raw
    if kind == "str":
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: must be a string")
        return raw
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{where}: must be an integer")
        return raw
    if kind == "list":
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ConfigError(f"{where}: must be a list of names")
        return tuple(raw)
    if kind == "table":
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: must be a table of latency group = seconds")
        return {str(mode): _parse_value(f"{key}.{mode}", value, "float", source) for mode, value in raw.items()}
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ConfigError(f"{where}: must be a finite number")
    return float(raw)

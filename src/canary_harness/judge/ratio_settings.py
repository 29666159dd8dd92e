"""Counter-ratio checks: ``[[judge.ratios]]`` tables, one check ``ratio[<name>]`` each.

A ratio check judges the canary's share numerator / denominator of two counters of the service (the
numerator counts a subset of the denominator's events: failed orders among orders) with the error-rate
machinery: the one-sample SLO tests against ``max`` and, with ``relative``, the two-sample share test
against ``relative`` × production's share. The planner sizes it for a canary share of ``mde``, and a PASS
for a healthy share of ``healthy``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary_harness.errors import ConfigError
from canary_harness.metrics.counters import CounterSelector

RATIO = "ratio"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_KEYS = ("name", "numerator", "denominator", "max", "relative", "mde", "healthy")
# Planning defaults relative to max, as error_rate's (healthy 0.2 % and MDE 3 % against a 0.5 % SLO would not
# fit every max): a healthy canary at 40 % of the SLO, a regression to twice the SLO.
HEALTHY_SHARE_OF_MAX = 0.4
MDE_TIMES_MAX = 2.0


def ratio_check(name: str) -> str:
    """Check name of the ratio check ``name``."""
    return f"{RATIO}[{name}]"


@dataclass(frozen=True)
class RatioCheck:
    """One ``[[judge.ratios]]`` table (see the module docstring); validated by :func:`ratios_from_list`."""

    name: str
    numerator: CounterSelector
    denominator: CounterSelector
    max: float
    relative: float | None = None
    mde: float = 0.0  # 0: MDE_TIMES_MAX × max, capped below 1
    healthy: float = 0.0  # 0: HEALTHY_SHARE_OF_MAX × max

    @property
    def check(self) -> str:
        """The check's name: ``ratio[<name>]``."""
        return ratio_check(self.name)

    @property
    def planned_mde(self) -> float:
        """The canary share the planner sizes the FAIL tests for."""
        return self.mde or min(MDE_TIMES_MAX * self.max, (1 + self.max) / 2)

    @property
    def planned_healthy(self) -> float:
        """The share of a healthy canary the planner sizes the PASS test for."""
        return self.healthy or HEALTHY_SHARE_OF_MAX * self.max

    @property
    def label(self) -> str:
        """``numerator / denominator`` as configured."""
        return f"{self.numerator.text} / {self.denominator.text}"


def _fraction(table: Mapping[str, Any], key: str, where: str, lower: float = 0.0, upper: float = 1.0) -> float:
    raw = table[key]
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or not lower < raw < upper:
        raise ConfigError(f"{where} {key} = {raw!r}: must be a number in ({lower:g}, {upper:g})")
    return float(raw)


def ratio_from_mapping(table: object, where: str) -> RatioCheck:
    """One ratio check from its table; ConfigError names ``where`` (file, table), the key and the value."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table with name, numerator, denominator and max, got {table!r}")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(_KEYS)}")
    for key in ("name", "numerator", "denominator", "max"):
        if key not in table:
            raise ConfigError(
                f"{where}: key {key!r} is missing (a ratio check needs name, numerator, denominator, max)"
            )
    name = table["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where} name = {name!r}: must be an identifier (letters, digits, '_'; not a digit first)")
    numerator = CounterSelector.parse(table["numerator"], f"{where} numerator")
    denominator = CounterSelector.parse(table["denominator"], f"{where} denominator")
    if numerator == denominator:
        raise ConfigError(f"{where} numerator = {numerator.text!r}: the same series as the denominator (share 1)")
    maximum = _fraction(table, "max", where)
    relative = None
    if "relative" in table:
        raw = table["relative"]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or raw < 1:
            raise ConfigError(f"{where} relative = {raw!r}: must be a number >= 1 (the canary/production share ratio)")
        relative = float(raw)
    mde = _fraction(table, "mde", where, lower=maximum) if "mde" in table else 0.0
    healthy = _fraction(table, "healthy", where, upper=maximum) if "healthy" in table else 0.0
    return RatioCheck(name, numerator, denominator, maximum, relative, mde, healthy)


def ratios_from_list(raw: object, source: str) -> tuple[RatioCheck, ...]:
    """Every ``[[judge.ratios]]`` table of ``source``; names must be unique."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError(f"[[judge.ratios]] ({source}): must be an array of tables, got {raw!r}")
    checks: list[RatioCheck] = []
    for index, table in enumerate(raw, start=1):
        where = f"[[judge.ratios]] #{index} ({source})"
        check = ratio_from_mapping(table, where)
        if any(other.name == check.name for other in checks):
            raise ConfigError(f"{where} name = {check.name!r}: already used by another ratio check")
        checks.append(check)
    return tuple(checks)


def selectors(ratios: Sequence[RatioCheck]) -> tuple[CounterSelector, ...]:
    """The distinct counters the ratio checks read, in order of appearance."""
    seen: dict[str, CounterSelector] = {}
    for check in ratios:
        for selector in (check.numerator, check.denominator):
            seen.setdefault(selector.text, selector)
    return tuple(seen.values())


def refuse_uncountable(ratios: Sequence[RatioCheck], checks: Sequence[str], counters: str, where: str) -> None:
    """ConfigError when ratio checks would run but ``[metrics] counters = "none"`` says there is nothing to read.

    Refused at load, not mid-stage: a check that can only ever be INCONCLUSIVE (or an error at the first
    read) is a profile mistake, and the user should learn it before traffic moves.
    """
    if ratios and RATIO in checks and counters == "none":
        raise ConfigError(
            f'{where}: [[judge.ratios]] {ratios[0].name!r} divides counters, but [metrics] counters = "none" says '
            "the service exposes none; expose them on its /metrics and drop that key, or drop the ratio checks"
        )

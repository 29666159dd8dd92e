"""Fault injection for bad releases, parsed from ``FRAGRANCE_FAULTS`` (comma-separated key=value).

Keys: ``error_rate`` and ``schema_rate`` (fractions in [0, 1]), ``latency_factor`` (>= 1, multiplies the
simulated latency), ``latency_add_ms`` (>= 0, absolute milliseconds, not scaled), both also per mode as
``latency_factor.creative=2``, ``loss_factor`` (> 0, multiplies the reported RL loss), ``loss_nan``
(1: every reported RL loss is NaN, a diverged model) and ``crash_after_s`` (> 0, the process exits that
many seconds after start). Worker-only keys (the API ignores them): ``crash_after_jobs`` (a worker exits 70
after that many jobs) and ``stall_after_jobs`` (a worker stops consuming after that many jobs but keeps
answering /health, like a stuck consumer).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fragrance_ai import MODES
from fragrance_ai.errors import SettingsError

SOURCE = "FRAGRANCE_FAULTS"
PER_MODE_KEYS = ("latency_factor", "latency_add_ms")
GLOBAL_KEYS = (
    "error_rate",
    "schema_rate",
    "loss_factor",
    "loss_nan",
    "crash_after_s",
    "crash_after_jobs",
    "stall_after_jobs",
)


def _frozen(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class Faults:
    """The faults in force; the defaults are a healthy release."""

    error_rate: float = 0.0
    schema_rate: float = 0.0
    loss_factor: float = 1.0
    loss_nan: bool = False
    crash_after_s: float | None = None
    crash_after_jobs: int | None = None
    stall_after_jobs: int | None = None
    latency_factor: Mapping[str, float] = field(default_factory=lambda: _frozen({m: 1.0 for m in MODES}))
    latency_add_ms: Mapping[str, float] = field(default_factory=lambda: _frozen({m: 0.0 for m in MODES}))
    given: Mapping[str, float] = field(default_factory=lambda: _frozen({}))

    @property
    def active(self) -> bool:
        """True when any fault was asked for."""
        return bool(self.given)

    def extra_latency_s(self, mode: str, elapsed_s: float) -> float:
        """Delay to add after the LLM ensemble answered in ``elapsed_s``: (factor - 1) x elapsed + add."""
        return (self.latency_factor[mode] - 1.0) * elapsed_s + self.latency_add_ms[mode] / 1000.0


def _number(key: str, raw: str, ok: Callable[[float], bool], rule: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or not ok(value):
        raise SettingsError(f"{SOURCE}: {key}={raw!r} is not {rule}")
    return value


_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "error_rate": (lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "schema_rate": (lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "loss_factor": (lambda v: v > 0.0, "a number > 0"),
    "loss_nan": (lambda v: v in (0.0, 1.0), "0 or 1"),
    "crash_after_s": (lambda v: v > 0.0, "a number of seconds > 0"),
    "crash_after_jobs": (lambda v: v >= 1.0 and v.is_integer(), "a whole number of jobs >= 1"),
    "stall_after_jobs": (lambda v: v >= 1.0 and v.is_integer(), "a whole number of jobs >= 1"),
    "latency_factor": (lambda v: v >= 1.0, "a number >= 1"),
    "latency_add_ms": (lambda v: v >= 0.0, "a number of milliseconds >= 0"),
}


def parse_faults(text: str | None) -> Faults:
    """Parse ``FRAGRANCE_FAULTS``; SettingsError names the bad key or value (nothing is half-applied)."""
    given: dict[str, float] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep:
            raise SettingsError(f"{SOURCE}: {item!r} is not key=value")
        base, dot, mode = key.partition(".")
        if base not in _RULES:
            known = ", ".join(GLOBAL_KEYS + PER_MODE_KEYS)
            raise SettingsError(f"{SOURCE}: unknown fault {key!r} (known: {known})")
        if dot and base not in PER_MODE_KEYS:
            raise SettingsError(
                f"{SOURCE}: fault {key!r}: only {', '.join(PER_MODE_KEYS)} take a .mode suffix"
            )
        if dot and mode not in MODES:
            raise SettingsError(f"{SOURCE}: fault {key!r}: unknown mode {mode!r} (modes: {', '.join(MODES)})")
        if key in given:
            raise SettingsError(f"{SOURCE}: fault {key!r} is given twice")
        ok, rule = _RULES[base]
        given[key] = _number(key, raw, ok, rule)
    return _build(given)


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def _build(given: Mapping[str, float]) -> Faults:
    defaults = {"latency_factor": 1.0, "latency_add_ms": 0.0}
    per_mode: dict[str, dict[str, float]] = {}
    for base, default in defaults.items():
        overall = given.get(base, default)
        # A per-mode value overrides the global one for that mode.
        per_mode[base] = {mode: given.get(f"{base}.{mode}", overall) for mode in MODES}
    crash = given.get("crash_after_s")
    return Faults(
        error_rate=given.get("error_rate", 0.0),
        schema_rate=given.get("schema_rate", 0.0),
        loss_factor=given.get("loss_factor", 1.0),
        loss_nan=given.get("loss_nan", 0.0) == 1.0,
        crash_after_s=crash,
        crash_after_jobs=_whole(given.get("crash_after_jobs")),
        stall_after_jobs=_whole(given.get("stall_after_jobs")),
        latency_factor=_frozen(per_mode["latency_factor"]),
        latency_add_ms=_frozen(per_mode["latency_add_ms"]),
        given=_frozen(given),
    )


class FaultInjector:
    """Draws the random fault decisions (seeded, so a run is reproducible)."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._rng = random.Random(seed ^ 0x5EED_FA17)

    def fail_request(self) -> bool:
        """Whether this API request is to be answered 500 (error_rate)."""
        return self.faults.error_rate > 0.0 and self._rng.random() < self.faults.error_rate

    def break_schema(self) -> bool:
        """Whether this llm_brief document is to be damaged (schema_rate)."""
        return self.faults.schema_rate > 0.0 and self._rng.random() < self.faults.schema_rate

    def seed_for_damage(self) -> int:
        """A seed for choosing how to damage a document."""
        return self._rng.getrandbits(32)

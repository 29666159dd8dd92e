"""The decision trace: every tick's counts and e-values of one stage, kept in the stage record.

Rows are compact (one list of numbers per tick, columns named once) and bounded: past ``MAX_ROWS``
every other row is dropped, the decided last row always kept, so a 900 s window at any tick stays
under ~1000 rows. E-values are read from each check's evidence (``e_*`` entries), so the trace works
with any judge; the engine's bounds are taken when the judge has one (the sequential judge).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary_harness.judge.settings import CHECK_FAMILIES, JudgeSettings
from canary_harness.judge.verdict import StageVerdict
from canary_harness.metrics.types import Buckets, MetricsSnapshot

MAX_ROWS = 1000
BASE_COLUMNS = (
    "t_s",
    "weight",
    "canary_requests",
    "production_requests",
    "canary_errors",
    "production_errors",
    "canary_journeys",
    "production_journeys",
)


def _finite(value: Any) -> float | None:
    """A finite float rounded to 6 significant digits (keeps the record compact), else None."""
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return float(f"{number:.6g}") if math.isfinite(number) else None


def _buckets(buckets: Buckets) -> list[list[float | None]]:
    # JSON has no Infinity: the +Inf edge is stored as None.
    return [[_finite(edge), float(count)] for edge, count in buckets]


def _bounds(judge: object, settings: JudgeSettings) -> dict[str, float]:
    """1/α_i, 1/β_i and 1/α_srm: the lines an e-value must cross to decide."""
    bounds = {"split": 1.0 / settings.srm_alpha}
    engine = getattr(judge, "engine", None)
    if engine is not None:
        bounds["fail"], bounds["pass"] = 1.0 / engine.alpha_i, 1.0 / engine.beta_i
    return bounds


@dataclass
class DecisionTrace:
    """Tick rows and what the plots need besides them (thresholds, bounds, final buckets, loss blocks)."""

    stage: int
    weight: int
    thresholds: dict[str, float]
    error_rate_slo: float
    loss_ratio: float
    bounds: dict[str, float]
    columns: list[str] = field(default_factory=lambda: list(BASE_COLUMNS))
    rows: list[list[float | None]] = field(default_factory=list)
    states: dict[str, list[str]] = field(default_factory=dict)
    buckets: dict[str, dict[str, list[list[float | None]]]] = field(default_factory=dict)
    loss_blocks: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    # Stage 0: the share in percent of production's requests copied to the canary (0: not a shadow stage).
    shadow_share: int = 0
    # The check families judged ([judge] checks): the plots leave out those the target turns off.
    families: list[str] = field(default_factory=lambda: list(CHECK_FAMILIES))

    @classmethod
    def start(cls, judge: object, settings: JudgeSettings, stage: int, weight: int) -> DecisionTrace:
        """An empty trace for a stage judged with ``settings`` at ``weight`` %."""
        return cls(
            stage=stage,
            weight=weight,
            thresholds=dict(settings.p95_thresholds),
            error_rate_slo=settings.error_rate_slo,
            loss_ratio=settings.loss_ratio,
            bounds=_bounds(judge, settings),
            families=list(settings.checks),
        )

    def add(
        self, verdict: StageVerdict, canary: MetricsSnapshot, production: MetricsSnapshot, judge: object | None = None
    ) -> None:
        """One tick: counts since stage start, every check's e-values and state; the decision if decided."""
        values: dict[str, float | None] = {
            "t_s": _finite(verdict.elapsed_s),
            "weight": float(self.weight),
            "canary_requests": canary.requests,
            "production_requests": production.requests,
            "canary_errors": canary.errors_5xx,
            "production_errors": production.errors_5xx,
            "canary_journeys": canary.journeys,
            "production_journeys": production.journeys,
        }
        for check in verdict.checks:
            for key, value in check.evidence.items():
                if key.startswith("e_") and not key.startswith("e_max_"):
                    values[f"{check.name}:{key}"] = _finite(value)
            self.states.setdefault(check.name, [])
        for name in values:
            if name not in self.columns:
                self.columns.append(name)
                for row in self.rows:
                    row.append(None)
        self.rows.append([values.get(name) for name in self.columns])
        for check in verdict.checks:
            self.states[check.name].append(check.state.value[0])
        self._bound()
        self.buckets = {
            mode: {
                "canary": _buckets(canary.latency_buckets.get(mode, ())),
                "production": _buckets(production.latency_buckets.get(mode, ())),
            }
            for mode in sorted(set(canary.latency_buckets) | set(production.latency_buckets))
        }
        feed = getattr(judge, "feed", None)
        if feed is not None:
            self.loss_blocks = {
                "canary": [*feed.judged_canary, *feed.pending_canary],
                "production": list(feed.production_blocks.means),
                "reference": feed.loss_reference,
            }
        if verdict.decided:
            self.decision = {
                "state": verdict.state.value,
                "t_s": verdict.elapsed_s,
                "reason": verdict.reason,
                "crossed": {check.name: _finite(check.evidence.get("crossed_at_s")) for check in verdict.checks},
            }

    def _bound(self) -> None:
        if len(self.rows) <= MAX_ROWS:
            return
        keep = list(range(0, len(self.rows) - 1, 2)) + [len(self.rows) - 1]
        self.rows = [self.rows[i] for i in keep]
        self.states = {name: [states[i] for i in keep if i < len(states)] for name, states in self.states.items()}

    def column(self, name: str) -> list[float | None]:
        """One column's values, None where a tick lacked it."""
        if name not in self.columns:
            return [None] * len(self.rows)
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def e_columns(self) -> dict[str, list[str]]:
        """Per check, the names of its e-value columns ("<check>:e_<test>")."""
        found: dict[str, list[str]] = {}
        for name in self.columns:
            if ":e_" in name:
                found.setdefault(name.split(":e_", 1)[0], []).append(name)
        return found

    def to_csv(self) -> str:
        """The trace as CSV: one row per tick, the columns plus each check's state letter (R/P/F/I)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        checks = list(self.states)
        writer.writerow([*self.columns, *(f"{name}:state" for name in checks)])
        for index, row in enumerate(self.rows):
            cells = ["" if value is None else f"{value:.6g}" for value in row]
            writer.writerow(
                [*cells, *(self.states[name][index] if index < len(self.states[name]) else "" for name in checks)]
            )
        return out.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in the stage record)."""
        return {
            "stage": self.stage,
            "weight": self.weight,
            "thresholds": self.thresholds,
            "error_rate_slo": self.error_rate_slo,
            "loss_ratio": self.loss_ratio,
            "bounds": self.bounds,
            "columns": self.columns,
            "rows": self.rows,
            "states": self.states,
            "buckets": self.buckets,
            "loss_blocks": self.loss_blocks,
            "decision": self.decision,
            "shadow_share": self.shadow_share,
            "families": self.families,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionTrace:
        """The inverse of :meth:`to_dict`."""
        return cls(
            stage=int(data["stage"]),
            weight=int(data["weight"]),
            thresholds=dict(data["thresholds"]),
            error_rate_slo=float(data["error_rate_slo"]),
            loss_ratio=float(data["loss_ratio"]),
            bounds=dict(data["bounds"]),
            columns=list(data["columns"]),
            rows=[list(row) for row in data["rows"]],
            states={k: list(v) for k, v in data["states"].items()},
            shadow_share=int(data.get("shadow_share", 0)),
            buckets=dict(data.get("buckets", {})),
            loss_blocks=dict(data.get("loss_blocks", {})),
            decision=dict(data.get("decision", {})),
            families=list(data.get("families", CHECK_FAMILIES)),
        )


def rates(
    counts: Sequence[float | None], totals: Sequence[float | None], times: Sequence[float | None]
) -> tuple[list[float], list[float]]:
    """Per-tick rate (Δcounts/Δtotals) of cumulative series, at the tick's time; ticks without requests skipped."""
    xs, ys = [], []
    prev_c, prev_n = 0.0, 0.0
    for t, c, n in zip(times, counts, totals, strict=True):
        if t is None or c is None or n is None:
            continue
        if n > prev_n:
            xs.append(t)
            ys.append((c - prev_c) / (n - prev_n))
        prev_c, prev_n = c, n
    return xs, ys


def running_rate(
    counts: Sequence[float | None], totals: Sequence[float | None], times: Sequence[float | None]
) -> tuple[list[float], list[float]]:
    """counts/totals since stage start at each tick (what the judge measures); ticks without requests skipped."""
    points = [
        (t, c / n) for t, c, n in zip(times, counts, totals, strict=True) if t is not None and c is not None and n
    ]
    return [t for t, _ in points], [r for _, r in points]

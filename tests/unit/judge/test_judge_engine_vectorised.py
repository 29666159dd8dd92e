"""The vectorised engine (what benchmarks/judge_sim.py runs) equals the per-snapshot judge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from judge_synthetic import arms

from canary_harness.judge import JudgeSettings
from canary_harness.judge.eprocess_engine import EProcessEngine
from canary_harness.judge.sequential import SequentialJudge
from canary_harness.judge.snapshot_ticks import SnapshotFeed
from canary_harness.judge.tick import ModeTick, Tick

SETTINGS = JudgeSettings(p95_thresholds={"fast": 2.5})
RUNS = 4
TICKS = 150


def _stack(ticks: list[Tick]) -> Tick:
    """One Tick whose counts are arrays over runs."""

    def column(name: str) -> np.ndarray:
        return np.array([float(getattr(t, name)) for t in ticks])

    def mode_column(name: str) -> np.ndarray:
        return np.array([float(getattr(t.modes.get("fast", ModeTick()), name)) for t in ticks])

    scalars = (
        "canary_requests",
        "production_requests",
        "canary_errors",
        "production_errors",
        "canary_units",
        "production_units",
        "canary_briefs",
        "canary_schema_failures",
        "production_briefs",
        "production_schema_failures",
        "loss_blocks",
        "loss_exceed",
        "loss_excess",
        "loss_excess_pairs",
    )
    modes = {
        "fast": ModeTick(
            **{
                name: mode_column(name)
                for name in (
                    "canary_requests",
                    "production_requests",
                    "canary_over_threshold",
                    "canary_over_tau",
                    "production_over_tau",
                )
            }
        )
    }
    return Tick(weight=column("weight"), modes=modes, **{name: column(name) for name in scalars})


def test_vectorised_engine_matches_each_scalar_judge() -> None:
    scenarios: list[dict[str, Any]] = [
        {},
        {"error_rate": 0.03},
        {"latency_median": {"fast": 1.4}},
        {"loss_mean": 4.0},
    ]
    judges = [SequentialJudge(SETTINGS) for _ in range(RUNS)]
    pairs = [arms(seed=20 + i, weight_percent=5, **scenarios[i]) for i in range(RUNS)]
    recorders = [SnapshotFeed(SETTINGS) for _ in range(RUNS)]
    vectorised = EProcessEngine(SETTINGS, shape=(RUNS,))
    compared = 0
    for second in range(1, TICKS + 1):
        ticks = []
        # A decided judge stops updating its engine; compare each run while its judge still updates.
        updating = [judge._decided is None for judge in judges]
        for judge, (canary, production), recorder in zip(judges, pairs, recorders, strict=True):
            c, p = canary.advance(1), production.advance(1)
            judge.observe(float(second), c, p, 5)
            ticks.append(recorder.push(float(second), c, p, 5))
        vectorised.update(_stack(ticks), float(second))
        for run, judge in enumerate(judges):
            if updating[run]:
                compared += 1
                for key, value in judge.engine.log_e.items():
                    assert vectorised.log_e[key][run] == pytest.approx(float(value), abs=1e-9), key
    decision = vectorised.decide(float(TICKS))
    for run, judge in enumerate(judges):
        verdict = judge._decided
        if verdict is not None and verdict.state.value == "FAIL":
            assert bool(decision.stage_fail[run])
        for key, crossed_at in judge.engine.crossed_at.items():
            scalar = float(crossed_at)
            if not np.isnan(scalar):
                assert vectorised.crossed_at[key][run] == scalar, key
    assert compared > TICKS * 1.5
    # The regressions were caught by the vectorised engine too.
    assert list(decision.stage_fail) == [False, True, True, True]


def test_the_split_is_shown_only_once_the_canary_received_a_unit_the_check_counts() -> None:
    # NGINX's log releases split units late: requests already counted, no unit yet, is no evidence.
    engine = EProcessEngine(JudgeSettings(p95_thresholds={"fast": 2.5}))
    engine.update(Tick(weight=0.25, canary_requests=10.0, production_requests=30.0), elapsed_s=1.0)
    assert not engine.decide(1.0).check_pass["traffic_split"]
    engine.update(Tick(weight=0.25, canary_units=3.0, production_units=9.0), elapsed_s=2.0)
    assert engine.decide(2.0).check_pass["traffic_split"]

"""The stage record: the plain, JSON-serialisable result of one stage that every test reads.

The controller writes it to the run directory; pytest-xdist workers read the same file, so the
stage is observed once whatever the number of workers.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canary_harness.private import write_private


@dataclass
class Phase:
    """One step of the stage session (start, preflight, weight, observation, verdict, rollback)."""

    name: str
    started: float
    ended: float | None = None
    ok: bool | None = None
    detail: str = ""


@dataclass
class StageRecord:
    """What happened in one stage and what was measured."""

    canary_version: str
    production_version: str
    stage: int
    dry_run: bool
    judge: str
    nginx_url: str | None = None
    canary_url: str | None = None
    production_url: str | None = None
    canary_log: str | None = None
    # The canary's workers ({"name", "url", "log"}): their /metrics join the canary arm's, their logs its
    # log checks (docs/workers.md).
    canary_workers: list[dict[str, str]] = field(default_factory=list)
    weight_in_force: int | None = None
    split_probe: dict[str, Any] | None = None
    preflight: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    verdict: dict[str, Any] | None = None
    load: dict[str, Any] | None = None
    error: str | None = None
    phases: list[Phase] = field(default_factory=list)
    upstream_config: str = ""
    plan: str = ""
    # The decision trace (reporting.trace.DecisionTrace.to_dict): every tick's counts and e-values.
    trace: dict[str, Any] | None = None
    # The traffic withdrawal made the moment the stage failed (weight 0 verified, verdict_to_zero_s...).
    rollback: dict[str, Any] | None = None
    # Why the stage ran past its window (on_inconclusive = extend_if_suspect); empty if it did not.
    extension: str = ""
    # Stream rates measured in this stage (canary_harness.judge.rates.StreamRates.to_dict()).
    rates: dict[str, Any] | None = None

    def begin(self, name: str) -> Phase:
        """Open a phase; the caller closes it with ``end``."""
        phase = Phase(name, time.time())
        self.phases.append(phase)
        return phase

    @staticmethod
    def end(phase: Phase, ok: bool, detail: str = "") -> None:
        """Close a phase with its outcome."""
        phase.ended, phase.ok, phase.detail = time.time(), ok, detail

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageRecord:
        """Inverse of to_dict."""
        values = dict(data)
        values["phases"] = [Phase(**phase) for phase in values.get("phases", [])]
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write atomically (temporary file + rename, 0600, fsynced) so a reader never sees half a record."""
        write_private(path, json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def read(cls, path: Path) -> StageRecord:
        """Read a saved record."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

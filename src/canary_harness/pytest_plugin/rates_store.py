"""The measured stream rates a stage leaves for the next stage or rollout (a JSON file in the run dir).

Each stage's record keeps the rates it measured (``StageRecord.rates``); the last of them is also
written to ``<run_dir>/judge-rates.json`` so that the next stage — a separate pytest session —
plans from measured rates instead of the defaults. A missing file means "no stage ran yet"; a
damaged one is reported and ignored, because planning must never stop a stage.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from canary_harness.errors import ConfigError
from canary_harness.judge.rates import StreamRates

RATES_FILE = "judge-rates.json"


def load_rates(run_dir: Path) -> tuple[StreamRates | None, str]:
    """The previous stage's rates and "" — or None and why they could not be used ("" if none yet)."""
    path = Path(run_dir) / RATES_FILE
    if not path.exists():
        return None, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StreamRates.from_dict(data, str(path)), ""
    except (OSError, ValueError, ConfigError, AttributeError) as exc:
        return None, f"measured rates in {path} ignored: {exc}"


def save_rates(run_dir: Path, rates: StreamRates) -> None:
    """Write atomically (temporary file + rename) so a reader never sees half a file."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".rates-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(rates.to_dict(), handle, indent=2)
    os.replace(tmp, run_dir / RATES_FILE)

"""The canary's structured logs carry the llm_brief and rl_update fields operators rely on."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from canary_harness.logs import missing_fields, read_events
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.smoke import SMOKE_BRIEF

# Also runs against a throwaway container: pytest canary_tests -m smoke --backend testcontainers
pytestmark = [pytest.mark.smoke, pytest.mark.canary_target("fragrance-ai")]

# Feedback sent to force one PPO update if the stage's own traffic did not fill a batch.
MAX_FEEDBACKS = 64
LOG_WAIT_S = 10.0


@pytest.fixture(scope="module")
def canary_log(canary_stage: StageRecord) -> list[Path]:
    """The canary's own log files (only known when the harness started the canary): its API's, then its
    workers' (a release with an RL worker logs rl_update there)."""
    if not canary_stage.canary_log:
        pytest.skip("canary started elsewhere: its log file is not available to the harness")
    return [Path(canary_stage.canary_log), *(Path(worker["log"]) for worker in canary_stage.canary_workers)]


def _read(paths: list[Path], event: str) -> list[dict]:
    return [item for path in paths if path.exists() for item in read_events(path, event)]


def _wait_for_event(paths: list[Path], event: str, deadline: float) -> list[dict]:
    while True:
        events = _read(paths, event)
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.2)  # poll the log files until the event appears or the deadline passes


def test_llm_brief_fields(canary_log: list[Path], canary_client: httpx.Client) -> None:
    canary_client.post("/dna/create", json={"brief": SMOKE_BRIEF, "mode": "fast"})
    events = _wait_for_event(canary_log, "llm_brief", time.monotonic() + LOG_WAIT_S)
    assert events, f"no llm_brief event in {canary_log}"
    assert not missing_fields(events, "llm_brief")
    assert {event["mode"] for event in events} <= {"fast", "balanced", "creative"}


def test_rl_update_fields(canary_log: list[Path], canary_client: httpx.Client) -> None:
    if not _read(canary_log, "rl_update"):
        for _ in range(MAX_FEEDBACKS):  # bounded: a few PPO batches at most
            created = canary_client.post("/dna/create", json={"brief": SMOKE_BRIEF})
            if created.status_code != 200:
                continue  # a canary that answers 5xx is judged by the error-rate check, not here
            dna_id = created.json()["dna_id"]
            response = canary_client.post(
                "/evolve/options", json={"dna_id": dna_id, "brief": SMOKE_BRIEF, "mode": "fast", "algorithm": "PPO"}
            )
            if response.status_code != 200:
                continue  # a canary that answers 5xx is judged by the error-rate check, not here
            options = response.json()
            feedback = canary_client.post(
                "/evolve/feedback",
                json={
                    "experiment_id": options["experiment_id"],
                    "chosen_id": options["options"][0]["id"],
                    "rating": 1 + len(options["experiment_id"]) % 5,
                },
            )
            if feedback.status_code == 200 and feedback.json().get("update") is not None:
                break
            if feedback.status_code == 200 and feedback.json().get("queued") and _read(canary_log, "rl_update"):
                break  # queued for the canary's RL worker, which has logged its update
    events = _wait_for_event(canary_log, "rl_update", time.monotonic() + LOG_WAIT_S)
    assert events, f"no rl_update event in {canary_log} after {MAX_FEEDBACKS} feedbacks"
    assert not missing_fields(events, "rl_update")
    assert all(event["algo"] == "PPO" for event in events)

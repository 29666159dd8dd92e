"""Smoke paths of the API, against the canary directly and through NGINX: the declared journey of any target,
and fragrance-ai's own paths.

The checks that wait on the service (the journey, /dna/create, the creative options) are walks: they are
sent to both clients at once when the first of them sets up (canary_harness.pytest_plugin.walks), so the
stage pays the slowest one rather than their sum; each test takes its own walk's outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.walks import Walk, Walks, started_walks
from canary_harness.smoke import SMOKE_BRIEF, journey_from, run_smoke

# Also runs against a throwaway container: pytest canary_tests -m smoke --backend testcontainers
pytestmark = pytest.mark.smoke

TARGETS = ["canary_client", "nginx_client"]


@pytest.fixture(params=TARGETS)
def api(request: pytest.FixtureRequest) -> httpx.Client:
    """The canary itself, then NGINX (where the stage's weight decides who answers)."""
    return request.getfixturevalue(request.param)


def walk_declared_journey(api: httpx.Client, options: StageOptions) -> None:
    journey = journey_from(options.toml)
    steps = run_smoke(api, expected_version=None, journey=journey)
    failed = [step for step in steps if not step.ok]
    assert not failed, f"{failed[0].step} (HTTP {failed[0].status}) against {api.base_url}: {failed[0].detail}"
    assert len(steps) == len(journey.steps)


def walk_dna_create(api: httpx.Client, _options: StageOptions) -> None:
    response = api.post("/dna/create", json={"brief": SMOKE_BRIEF})
    assert response.status_code == 200, response.text
    assert response.json()["dna_id"].startswith("dna_")


def walk_creative_options_and_feedback(api: httpx.Client, _options: StageOptions) -> None:
    dna_id = api.post("/dna/create", json={"brief": SMOKE_BRIEF}).json()["dna_id"]
    response = api.post(
        "/evolve/options",
        json={"dna_id": dna_id, "brief": SMOKE_BRIEF, "mode": "creative", "algorithm": "PPO", "num_options": 3},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["experiment_id"].startswith("exp_")
    assert len(body["options"]) == 3, f"expected 3 options, got {len(body['options'])}"
    feedback = api.post(
        "/evolve/feedback",
        json={"experiment_id": body["experiment_id"], "chosen_id": body["options"][0]["id"], "rating": 5},
    )
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["status"] == "accepted"


WALKS: dict[str, Walk] = {
    "test_declared_journey": walk_declared_journey,
    "test_dna_create_returns_an_id": walk_dna_create,
    "test_creative_options_and_feedback": walk_creative_options_and_feedback,
}


@pytest.fixture(scope="module")
def walks(request: pytest.FixtureRequest, canary_options: StageOptions) -> Iterator[Walks]:
    with started_walks(request, WALKS, canary_options) as started:
        yield started


def test_declared_journey(api: httpx.Client, walks: Walks, request: pytest.FixtureRequest) -> None:
    """The target's [[smoke]] journey (fragrance-ai's built in), walked again after the observation."""
    walks.take(request, api)


@pytest.mark.canary_target("fragrance-ai")
def test_health(api: httpx.Client) -> None:
    response = api.get("/health")
    assert response.status_code == 200, f"GET {api.base_url}/health answered {response.status_code}"
    assert response.json()["status"] == "healthy"
    assert response.headers.get("X-App-Version"), "X-App-Version header missing"


@pytest.mark.canary_target("fragrance-ai")
def test_canary_serves_the_release_version(canary_client: httpx.Client, canary_stage: StageRecord) -> None:
    body = canary_client.get("/health").json()
    assert body["version"] == canary_stage.canary_version


@pytest.mark.canary_target("fragrance-ai")
def test_dna_create_returns_an_id(api: httpx.Client, walks: Walks, request: pytest.FixtureRequest) -> None:
    walks.take(request, api)


@pytest.mark.canary_target("fragrance-ai")
def test_creative_options_and_feedback(api: httpx.Client, walks: Walks, request: pytest.FixtureRequest) -> None:
    walks.take(request, api)

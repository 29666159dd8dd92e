"""The canary exposes the series the gate and the dashboards read."""

from __future__ import annotations

import httpx
import pytest

# Also runs against a throwaway container: pytest canary_tests -m smoke --backend testcontainers
pytestmark = [pytest.mark.smoke, pytest.mark.canary_target("fragrance-ai")]

REQUIRED_SERIES = [
    "http_request_duration_seconds_bucket",
    "http_requests_total",
    "llm_brief_total",
    "llm_brief_duration_seconds_bucket",
    "llm_brief_schema_failures_total",
    "rl_update_total",
    "rl_update_loss_count",
    "rl_training_loss",
]


@pytest.fixture(scope="module")
def exposition(canary_client: httpx.Client) -> str:
    """The canary's /metrics text."""
    response = canary_client.get("/metrics")
    assert response.status_code == 200, f"/metrics answered {response.status_code}"
    return response.text


@pytest.mark.parametrize("series", REQUIRED_SERIES)
def test_series_present(exposition: str, series: str) -> None:
    assert any(line.startswith(series + "{") or line.startswith(series + " ") for line in exposition.splitlines()), (
        f"series {series} missing from the canary's /metrics"
    )


def test_latency_histogram_has_threshold_edges(exposition: str) -> None:
    for edge in ("2.5", "3.2", "4.5"):
        assert f'le="{edge}"' in exposition, f"latency histogram lacks the bucket edge le={edge}"

"""The smoke journey against one base URL: health, create a DNA, ask for options, send feedback.

Used as the preflight of a stage (against the canary directly, before any traffic moves) and by the
release checks in canary_tests/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import httpx

from canary_harness.errors import BackendError

SMOKE_BRIEF = "A fresh citrus fragrance with a woody base for summer evenings"


@dataclass(frozen=True)
class SmokeStep:
    """One request of the smoke journey and its outcome."""

    step: str
    ok: bool
    status: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a step expects; ValueError naming the URL for anything else (a list, a string)."""
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"{response.request.url} answered a JSON {type(data).__name__}, not an object")
    return data


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(path, json=body)


def run_smoke(client: httpx.Client, *, expected_version: str | None, mode: str = "creative") -> list[SmokeStep]:
    """Walk the journey; stops at the first failed step. The client's base_url is the target."""
    steps: list[SmokeStep] = []

    def record(step: str, response: httpx.Response | None, ok: bool, detail: str) -> bool:
        steps.append(SmokeStep(step, ok, response.status_code if response is not None else None, detail))
        return ok

    try:
        health = client.get("/health")
        body = _object(health) if health.status_code == 200 else {}
        version = body.get("version")
        ok = (
            health.status_code == 200
            and body.get("status") == "healthy"
            and (expected_version is None or version == expected_version)
        )
        if not record(
            "GET /health", health, ok, f"status={body.get('status')} version={version} (expected {expected_version})"
        ):
            return steps
        created = _post(client, "/dna/create", {"brief": SMOKE_BRIEF, "mode": "fast"})
        dna_id = str(_object(created).get("dna_id", "")) if created.status_code == 200 else ""
        if not record("POST /dna/create", created, dna_id.startswith("dna_"), f"dna_id={dna_id!r}"):
            return steps
        options = _post(
            client,
            "/evolve/options",
            {"dna_id": dna_id, "brief": SMOKE_BRIEF, "mode": mode, "algorithm": "PPO", "num_options": 3},
        )
        payload = _object(options) if options.status_code == 200 else {}
        choices = payload.get("options", [])
        experiment = payload.get("experiment_id", "")
        ok = options.status_code == 200 and len(choices) == 3 and str(experiment).startswith("exp_")
        if not record(
            f"POST /evolve/options [{mode}]", options, ok, f"experiment_id={experiment!r} options={len(choices)}"
        ):
            return steps
        feedback = _post(
            client, "/evolve/feedback", {"experiment_id": experiment, "chosen_id": choices[0]["id"], "rating": 4}
        )
        status = _object(feedback).get("status") if feedback.status_code == 200 else None
        record("POST /evolve/feedback", feedback, status == "accepted", f"status={status!r}")
    except (httpx.HTTPError, ValueError, TypeError, KeyError, IndexError) as exc:
        # A service answering garbage (a list, a string, missing fields) fails the step, never the harness.
        steps.append(SmokeStep("request", False, None, f"{exc.__class__.__name__}: {exc}"))
    return steps


def require_smoke(client: httpx.Client, *, expected_version: str | None, target: str) -> list[SmokeStep]:
    """run_smoke, raising BackendError that names the failed step and the target."""
    steps = run_smoke(client, expected_version=expected_version)
    failed = [step for step in steps if not step.ok]
    if failed:
        step = failed[0]
        raise BackendError(f"smoke against {target} failed at {step.step} (HTTP {step.status}): {step.detail}")
    return steps

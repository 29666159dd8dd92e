"""Walking a smoke journey against one base URL: requests, assertions, captures, one outcome per step.

Used as the preflight of a stage (against the canary directly, before any traffic moves), by
``canary smoke`` and by the release checks in canary_tests/.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from canary_harness.errors import BackendError
from canary_harness.smoke.journey import VARIABLE_RE, Expectation, Journey, JourneyStep, default_journey, variables_in

_MISSING = object()


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


def fill(value: Any, variables: Mapping[str, Any]) -> Any:
    """``value`` with every ``{variable}`` replaced; a string that is one variable takes its value as is."""
    if isinstance(value, str):
        whole = VARIABLE_RE.fullmatch(value)
        if whole:
            return variables[whole.group(1)]
        return VARIABLE_RE.sub(lambda match: str(variables[match.group(1)]), value)
    if isinstance(value, Mapping):
        return {key: fill(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, variables) for item in value]
    return value


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (numbers index lists); _MISSING when there is none."""
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def failed_expectation(document: Any, expectation: Expectation, expected: Any) -> str | None:
    """Why the answer fails the assertion, or None when it holds."""
    actual = lookup(document, expectation.field)
    if actual is _MISSING:
        return f"field {expectation.field!r} missing"
    kind = expectation.kind
    if kind == "equals" and actual != expected:
        return f"field {expectation.field!r} = {actual!r}, expected {expected!r}"
    if kind == "prefix" and not (isinstance(actual, str) and actual.startswith(expected)):
        return f"field {expectation.field!r} = {actual!r}, expected to start with {expected!r}"
    if kind == "length" and (not isinstance(actual, list | str | Mapping) or len(actual) != expected):
        size = len(actual) if isinstance(actual, list | str | Mapping) else "no length"
        return f"field {expectation.field!r} has length {size}, expected {expected}"
    if kind == "one_of" and actual not in expected:
        return f"field {expectation.field!r} = {actual!r}, expected one of {expected!r}"
    return None


def _walk_step(client: httpx.Client, step: JourneyStep, variables: dict[str, Any]) -> SmokeStep:
    name = fill(step.name, variables)
    response = client.request(
        step.method, fill(step.path, variables), headers=fill(step.headers, variables), json=fill(step.body, variables)
    )
    if response.status_code != step.status:
        return SmokeStep(name, False, response.status_code, f"expected HTTP {step.status}: {response.text[:200]!r}")
    document: Any = None
    if step.expect or step.capture:
        document = response.json()  # ValueError for a body that is not JSON: the step fails
        if not isinstance(document, dict):
            raise ValueError(f"{response.request.url} answered a JSON {type(document).__name__}, not an object")
    notes = []
    for expectation in step.expect:
        if variables_in(expectation.value) - {key for key, value in variables.items() if value is not None}:
            notes.append(f"{expectation.field} not checked (nothing expected)")
            continue
        failure = failed_expectation(document, expectation, fill(expectation.value, variables))
        if failure is not None:
            return SmokeStep(name, False, response.status_code, failure)
        notes.append(f"{expectation.field} ok")
    for variable, path in step.capture.items():
        captured = lookup(document, path)
        if captured is _MISSING:
            return SmokeStep(name, False, response.status_code, f"capture {variable}: field {path!r} missing")
        variables[variable] = captured
        notes.append(f"{variable}={captured!r}")
    return SmokeStep(name, True, response.status_code, "; ".join(notes) or "status ok")


def run_smoke(
    client: httpx.Client,
    *,
    expected_version: str | None,
    mode: str = "creative",
    journey: Journey | None = None,
) -> list[SmokeStep]:
    """Walk the journey (default: fragrance-ai's) against the client's base_url; stops at the first failed step."""
    variables: dict[str, Any] = {"version": expected_version, "mode": mode}
    steps: list[SmokeStep] = []
    for step in (journey or default_journey()).steps:
        try:
            outcome = _walk_step(client, step, variables)
        except (httpx.HTTPError, ValueError) as exc:
            # A service answering garbage (a list, a string, no JSON) fails the step, never the harness.
            outcome = SmokeStep(fill(step.name, variables), False, None, f"{exc.__class__.__name__}: {exc}")
        steps.append(outcome)
        if not outcome.ok:
            break
    return steps


def require_smoke(
    client: httpx.Client, *, expected_version: str | None, target: str, journey: Journey | None = None
) -> list[SmokeStep]:
    """run_smoke, raising BackendError that names the failed step and the target."""
    steps = run_smoke(client, expected_version=expected_version, journey=journey)
    failed = [step for step in steps if not step.ok]
    if failed:
        step = failed[0]
        raise BackendError(f"smoke against {target} failed at {step.step} (HTTP {step.status}): {step.detail}")
    return steps

"""What a simulated user of fragrance-ai does and how its answers are judged; pure, no I/O.

Both load engines (the locustfile in load/ and the builtin driver) drive the same walks: a walk
plans the next request, the engine sends it with its own HTTP client, and the walk checks the answer.
One request per step keeps constant-rate pacing exact: pacing counts requests, not journeys.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from canary_harness.config import MODES

NUM_OPTIONS = 3
# Every request of one journey carries the same id, so a proxy can keep a journey on one instance
# (the service keeps DNAs and experiments in its own memory: a later step elsewhere gets a 404).
JOURNEY_HEADER = "X-Journey-Id"
VERSION_HEADERS = ("x-served-version", "x-app-version")  # NGINX's view first, then the service's own
UNKNOWN_VERSION = "unknown"

BRIEFS: tuple[str, ...] = (
    "a fresh citrus cologne for summer evenings by the sea",
    "warm amber and vanilla for a winter night out",
    "green tea and fig, calm and clean, for the office",
    "smoky leather and oud with a hint of rose",
    "light floral for a spring wedding, not too sweet",
    "spicy cardamom and cedar for an autumn walk",
    "a gourmand with tonka and coffee, cosy but not heavy",
    "aquatic and mineral, like rain on warm stone",
)


@dataclass(frozen=True)
class PlannedRequest:
    """One request a walk wants sent: ``name`` is the stats key (route plus mode)."""

    method: str
    path: str
    name: str
    body: Mapping[str, Any] | None = None
    mode: str | None = None
    starts_journey: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The check of one answer: ok, or the reason it counts as a failure."""

    ok: bool
    reason: str = ""
    version: str = UNKNOWN_VERSION


class Walk(Protocol):
    """A simulated user's sequence of requests."""

    def next_request(self) -> PlannedRequest:
        """The request to send now."""

    def record(self, status: int, headers: Mapping[str, str], text: str) -> Verdict:
        """Check the answer to the last planned request and move on."""


class ModePicker:
    """Draws an LLM mode per journey with the configured mix (fractions by mode)."""

    def __init__(self, mix: Mapping[str, float], rng: random.Random) -> None:
        self._modes = [mode for mode in MODES if mix.get(mode, 0.0) > 0]
        if not self._modes:
            raise ValueError(f"mix {dict(mix)!r} gives no mode a weight above 0")
        self._cumulative = list(itertools.accumulate(mix[mode] for mode in self._modes))
        self._rng = rng

    def pick(self) -> str:
        """One mode, drawn independently of earlier draws."""
        point = self._rng.random() * self._cumulative[-1]
        index = min(bisect.bisect_right(self._cumulative, point), len(self._modes) - 1)
        return self._modes[index]


def served_version(headers: Mapping[str, str]) -> str | None:
    """The version that served a response: NGINX's X-Served-Version, else the service's X-App-Version."""
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    for header in VERSION_HEADERS:
        if lowered.get(header, "").strip():
            return lowered[header].strip()
    return None


class _Failed(Exception):
    """Internal: an answer did not pass a check (the message is the reason)."""


def _base_check(status: int, headers: Mapping[str, str]) -> str:
    if status == 0:
        raise _Failed("no response (connection error or timeout)")
    if status != 200:
        raise _Failed(f"HTTP {status}")
    version = served_version(headers)
    if version is None:
        raise _Failed("no X-Served-Version or X-App-Version header")
    return version


def _json_object(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        raise _Failed("body is not JSON") from None
    if not isinstance(body, dict):
        raise _Failed(f"body is a JSON {type(body).__name__}, expected an object")
    return body


def _prefixed(body: Mapping[str, Any], key: str, prefix: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.startswith(prefix):
        raise _Failed(f"{key} {value!r} does not start with {prefix!r}")
    return value


def _judge(status: int, headers: Mapping[str, str], check: Callable[[str], None], text: str) -> Verdict:
    """Run the common and the step's own checks; any failure becomes a Verdict with its reason."""
    version = served_version(headers) or UNKNOWN_VERSION
    try:
        version = _base_check(status, headers)
        check(text)
    except _Failed as failed:
        return Verdict(False, str(failed), version)
    return Verdict(True, "", version)


@dataclass
class Journey:
    """Create a DNA, ask for options in the journey's mode, send feedback on one; then a new journey.

    A failed step ends the journey: the next request starts a new one with a fresh mode draw.
    """

    picker: ModePicker
    rng: random.Random
    _step: str = "create"
    _journey_id: str = ""
    _mode: str = "fast"
    _brief: str = ""
    _dna_id: str = ""
    _experiment_id: str = ""
    _option_ids: list[str] = field(default_factory=list)

    def next_request(self) -> PlannedRequest:
        """The next step's request; a new journey draws its mode and brief."""
        if self._step == "create":
            self._mode = self.picker.pick()
            self._brief = self.rng.choice(BRIEFS)
            self._journey_id = f"j{self.rng.getrandbits(64):016x}"
            return self._plan("/dna/create", {"brief": self._brief, "mode": self._mode}, starts_journey=True)
        if self._step == "options":
            return self._plan(
                "/evolve/options",
                {
                    "dna_id": self._dna_id,
                    "brief": self._brief,
                    "mode": self._mode,
                    "algorithm": "PPO",
                    "num_options": NUM_OPTIONS,
                },
            )
        return self._plan(
            "/evolve/feedback",
            {
                "experiment_id": self._experiment_id,
                "chosen_id": self.rng.choice(self._option_ids),
                "rating": self.rng.randint(1, 5),
            },
        )

    def _plan(self, path: str, body: Mapping[str, Any], *, starts_journey: bool = False) -> PlannedRequest:
        return PlannedRequest(
            "POST", path, f"{path} [{self._mode}]", body, self._mode, starts_journey, {JOURNEY_HEADER: self._journey_id}
        )

    def record(self, status: int, headers: Mapping[str, str], text: str) -> Verdict:
        """Check the answer to the current step and advance (or restart after a failure)."""
        checks = {"create": self._check_create, "options": self._check_options, "feedback": self._check_feedback}
        verdict = _judge(status, headers, checks[self._step], text)
        if not verdict.ok:
            self._step = "create"
        return verdict

    def _check_create(self, text: str) -> None:
        body = _json_object(text)
        dna_id = _prefixed(body, "dna_id", "dna_")
        if not isinstance(body.get("version"), str) or not body["version"]:
            raise _Failed("version missing from the body")
        notes = body.get("notes")
        if not isinstance(notes, dict) or not all(isinstance(notes.get(key), list) for key in ("top", "heart", "base")):
            raise _Failed("notes must hold top, heart and base lists")
        self._dna_id, self._step = dna_id, "options"

    def _check_options(self, text: str) -> None:
        body = _json_object(text)
        experiment_id = _prefixed(body, "experiment_id", "exp_")
        if body.get("dna_id") != self._dna_id:
            raise _Failed(f"dna_id {body.get('dna_id')!r} is not the one asked for ({self._dna_id!r})")
        options = body.get("options")
        if not isinstance(options, list) or len(options) != NUM_OPTIONS:
            count = len(options) if isinstance(options, list) else "no"
            raise _Failed(f"{count} options, expected {NUM_OPTIONS}")
        ids = []
        for option in options:
            if not isinstance(option, dict) or "action" not in option or "dna" not in option:
                raise _Failed("an option lacks its action or dna")
            ids.append(_prefixed(option, "id", "opt_"))
        self._experiment_id, self._option_ids, self._step = experiment_id, ids, "feedback"

    def _check_feedback(self, text: str) -> None:
        body = _json_object(text)
        self._step = "create"  # the journey ends here whatever the answer
        if body.get("status") != "accepted":
            raise _Failed(f"status {body.get('status')!r}, expected 'accepted'")
        if body.get("experiment_id") != self._experiment_id:
            raise _Failed(f"experiment_id {body.get('experiment_id')!r} is not {self._experiment_id!r}")
        if "update" not in body or not (body["update"] is None or isinstance(body["update"], dict)):
            raise _Failed("update must be null or an object")


@dataclass
class LightProbe:
    """The health/metrics-light profile: /health three times out of four, /metrics otherwise."""

    rng: random.Random
    _path: str = "/health"

    def next_request(self) -> PlannedRequest:
        """GET /health or /metrics; no LLM call."""
        self._path = "/metrics" if self.rng.random() < 0.25 else "/health"
        return PlannedRequest("GET", self._path, self._path)

    def record(self, status: int, headers: Mapping[str, str], text: str) -> Verdict:
        """/health must say healthy with a version; /metrics must be Prometheus text."""
        check = self._check_health if self._path == "/health" else self._check_metrics
        return _judge(status, headers, check, text)

    @staticmethod
    def _check_health(text: str) -> None:
        body = _json_object(text)
        if body.get("status") != "healthy":
            raise _Failed(f"status {body.get('status')!r}, expected 'healthy'")
        if not isinstance(body.get("version"), str) or not body["version"]:
            raise _Failed("version missing from the body")

    @staticmethod
    def _check_metrics(text: str) -> None:
        if "# TYPE" not in text:
            raise _Failed("not Prometheus text (no '# TYPE' line)")


def make_walk(profile: str, picker: ModePicker, rng: random.Random, requests: Sequence[Any] = ()) -> Walk:
    """A fresh walk of the given profile ("journey", "light" or "requests": the mix ``requests``) for one
    simulated user."""
    if profile == "journey":
        return Journey(picker, rng)
    if profile == "light":
        return LightProbe(rng)
    if profile == "requests":
        from canary_harness.loadgen.request_mix import RequestMix  # it builds on this module's types

        return RequestMix(requests, rng)
    raise ValueError(f"unknown load profile {profile!r}")

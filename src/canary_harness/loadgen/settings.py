"""Load settings: users, rate, LLM mode mix, profile, workers and limits, validated with their source named.

One frozen ``LoadSettings`` is built from canary.toml ``[load]`` (``from_mapping``) and then adjusted by
command-line overrides with ``dataclasses.replace``; every construction path runs the same checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from canary_harness.config import MODES
from canary_harness.errors import ConfigError
from canary_harness.loadgen.request_mix import RequestSpec, parse_requests
from canary_harness.loadgen.user_locustfile import check_user_locustfile, parse_user_classes

DEFAULT_MIX: Mapping[str, float] = {"fast": 0.5, "balanced": 0.35, "creative": 0.15}
PROFILES: tuple[str, ...] = ("journey", "light", "requests", "locustfile")
ENGINES: tuple[str, ...] = ("auto", "locust", "builtin")
CLIENTS: tuple[str, ...] = ("fast", "http")


def parse_mix(raw: str, source: str) -> dict[str, float]:
    """``"fast=50,balanced=35,creative=15"`` into fractions summing to 1, in MODES order.

    Weights are any non-negative numbers (percentages or fractions); a mode left out gets 0.
    Unknown or repeated modes, bad numbers and an all-zero mix are refused, naming the value and source.
    """
    text = str(raw).strip()
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        mode, sep, number = item.partition("=")
        mode = mode.strip()
        if not sep or not mode:
            raise ConfigError(
                f"mix {raw!r} ({source}): entry {item!r} must be MODE=WEIGHT, e.g. fast=50,balanced=35,creative=15"
            )
        weights[_check_mode(mode, raw, source, repeated=mode in weights)] = _weight(number, mode, raw, source)
    return _normalise(weights, raw, source)


def mix_from_mapping(raw: Mapping[str, Any], source: str) -> dict[str, float]:
    """A mix given as a table (``mix = {fast = 50, balanced = 35, creative = 15}``)."""
    weights = {
        _check_mode(str(mode), raw, source, repeated=False): _weight(value, str(mode), raw, source)
        for mode, value in raw.items()
    }
    return _normalise(weights, raw, source)


def format_mix(mix: Mapping[str, float]) -> str:
    """The canonical text form that ``parse_mix`` reads back (and the locustfile's --canary-mix takes)."""
    return ",".join(f"{mode}={mix.get(mode, 0.0):.6g}" for mode in MODES)


def _check_mode(mode: str, raw: object, source: str, *, repeated: bool) -> str:
    if mode not in MODES:
        raise ConfigError(f"mix {raw!r} ({source}): unknown mode {mode!r}; modes are {', '.join(MODES)}")
    if repeated:
        raise ConfigError(f"mix {raw!r} ({source}): mode {mode!r} is given twice")
    return mode


def _weight(value: object, mode: str, raw: object, source: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ConfigError(f"mix {raw!r} ({source}): weight {value!r} of {mode!r} must be a number >= 0")
    return number


def _normalise(weights: Mapping[str, float], raw: object, source: str) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"mix {raw!r} ({source}): at least one mode needs a weight above 0")
    return {mode: weights.get(mode, 0.0) / total for mode in MODES}


@dataclass(frozen=True)
class LoadSettings:
    """How one stage's load is generated.

    users / spawn_rate: simulated users and how many start per second.
    rate_rps: total request rate target over all users and workers; None runs closed loop (each user
        sends its next request as soon as the previous one answered).
    mix: share of user journeys per LLM mode (fractions summing to 1).
    profile: "journey" (create DNA → options → feedback), "light" (/health and /metrics only) or
        "requests" (``requests``: a weighted list of requests, for any HTTP service) or "locustfile" (the
        user classes ``user_classes``, all when empty, of the user's own ``locustfile``).
    workers: 0 runs one locust process; N > 0 runs a locust master and N local workers.
    max_requests: hard cap on requests sent; every run also stops at its time limit.
    engine: "locust", "builtin" (threads + httpx, no locust needed) or "auto" (locust when installed).
    client: locust's HTTP client: "fast" (FastHttpUser) or "http" (HttpUser, python-requests).
    request_timeout_s: a request still unanswered after this long counts as a failure.
    locustfile: the harness's locustfile directory (None: load/ of this checkout); with profile
        "locustfile", the user's own locustfile (a .py file, relative to the working directory).
    seed: seeds the mode draws (None: a fresh random seed per run).
    """

    users: int = 20
    spawn_rate: float = 10.0
    rate_rps: float | None = None
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    profile: str = "journey"
    workers: int = 0
    max_requests: int | None = None
    engine: str = "auto"
    client: str = "fast"
    request_timeout_s: float = 30.0
    locustfile: Path | None = None
    seed: int | None = None
    requests: tuple[RequestSpec, ...] = ()
    user_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        source = "LoadSettings"
        # Values built in code are checked (and coerced) like values read from a file.
        checked: dict[str, Any] = {
            "users": _int_at_least(self.users, 1, "users", source),
            "spawn_rate": _positive(self.spawn_rate, "spawn_rate", source),
            "rate_rps": None if self.rate_rps is None else _positive(self.rate_rps, "rate_rps", source),
            "mix": mix_from_mapping(self.mix, f"{source} mix"),
            "profile": _one_of(self.profile, PROFILES, "profile", source),
            "workers": _int_at_least(self.workers, 0, "workers", source),
            "max_requests": None
            if self.max_requests is None
            else _int_at_least(self.max_requests, 1, "max_requests", source),
            "engine": _one_of(self.engine, ENGINES, "engine", source),
            "client": _one_of(self.client, CLIENTS, "client", source),
            "request_timeout_s": _positive(self.request_timeout_s, "request_timeout_s", source),
            "seed": None if self.seed is None else _int_at_least(self.seed, 0, "seed", source),
            "user_classes": parse_user_classes(list(self.user_classes), source),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.profile == "requests" and not self.requests:
            raise ConfigError(f"load profile 'requests' ({source}): give the mix in [load] requests")
        _check_profile_keys({item.name: getattr(self, item.name) for item in fields(self)}, source)
        if self.engine == "builtin" and self.workers:
            raise ConfigError(
                f"load workers {self.workers} ({source}): distributed mode needs engine "
                f"'locust' or 'auto', not 'builtin'"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> LoadSettings:
        """Settings from canary.toml ``[load]``; unknown keys and bad values raise ConfigError naming both."""
        known = {item.name for item in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            where = f"{source} key {key!r}"
            if key not in known:
                raise ConfigError(
                    f"load setting {key!r} ({source}): unknown; known keys are {', '.join(sorted(known))}"
                )
            values[key] = _PARSERS[key](raw, where)
        # Checked here too, so that an error names the file and table rather than "LoadSettings".
        _check_profile_keys({**_DEFAULTS, **values}, source)
        return cls(**values)


_DEFAULTS: Mapping[str, Any] = {"profile": "journey", "user_classes": (), "locustfile": None, "engine": "auto"}


def _check_profile_keys(values: Mapping[str, Any], source: str) -> None:
    """The keys of profile "locustfile" go together (and ``user_classes`` goes with no other profile)."""
    profile, classes = values["profile"], values["user_classes"]
    if profile != "locustfile":
        if classes:
            raise ConfigError(
                f'load user_classes {list(classes)!r} ({source}): only with profile "locustfile", not {profile!r}'
            )
        return
    check_user_locustfile(values["locustfile"], classes, source)
    if values["engine"] == "builtin":
        raise ConfigError(
            f"load engine 'builtin' ({source}): cannot run a locustfile (profile \"locustfile\"); "
            f'use engine "locust" or "auto"'
        )


# --------------------------------------------------------------------------- value parsers (raw → typed)
def _int_at_least(raw: object, low: int, name: str, source: str) -> int:
    text = str(raw).strip()
    if isinstance(raw, bool) or not (text.isascii() and text.isdigit()) or int(text) < low:
        raise ConfigError(f"load {name} {raw!r} ({source}): must be an integer >= {low}")
    return int(text)


def _positive(raw: object, name: str, source: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"load {name} {raw!r} ({source}): must be a positive number")
    return value


def _one_of(raw: object, choices: tuple[str, ...], name: str, source: str) -> str:
    text = str(raw).strip()
    if text not in choices:
        raise ConfigError(f"load {name} {raw!r} ({source}): must be one of {', '.join(choices)}")
    return text


def _optional(parse: Any, off: tuple[str, ...] = ("", "0", "none")) -> Any:
    """In canary.toml, 0 or "" switches an optional limit off (TOML has no null)."""

    def parse_optional(raw: object, source: str) -> Any:
        return None if str(raw).strip().lower() in off else parse(raw, source)

    return parse_optional


def _parse_mix_any(raw: object, source: str) -> dict[str, float]:
    if isinstance(raw, Mapping):
        return mix_from_mapping(raw, source)
    return parse_mix(str(raw), source)


_PARSERS: dict[str, Any] = {
    "users": lambda raw, src: _int_at_least(raw, 1, "users", src),
    "spawn_rate": lambda raw, src: _positive(raw, "spawn_rate", src),
    "rate_rps": _optional(lambda raw, src: _positive(raw, "rate_rps", src)),
    "mix": _parse_mix_any,
    "profile": lambda raw, src: _one_of(raw, PROFILES, "profile", src),
    "workers": lambda raw, src: _int_at_least(raw, 0, "workers", src),
    "max_requests": _optional(lambda raw, src: _int_at_least(raw, 1, "max_requests", src)),
    "engine": lambda raw, src: _one_of(raw, ENGINES, "engine", src),
    "client": lambda raw, src: _one_of(raw, CLIENTS, "client", src),
    "request_timeout_s": lambda raw, src: _positive(raw, "request_timeout_s", src),
    "locustfile": lambda raw, src: Path(str(raw)),
    "seed": _optional(lambda raw, src: _int_at_least(raw, 0, "seed", src), off=("", "none")),
    "requests": parse_requests,
    "user_classes": parse_user_classes,
}

"""The load of any HTTP service: a weighted list of requests (``[load] requests`` with ``profile =
"requests"``), drawn independently for every step of every simulated user; pure, no I/O.

Each entry: ``path`` (required), ``method`` (GET), ``weight`` (1), ``json`` (a body), ``headers``,
``name`` (the stats key; default "METHOD path") and ``status`` (the statuses that count as a success;
default every 2xx and 3xx). The list travels to locust's processes as JSON in ``CANARY_LOAD_REQUESTS``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from canary_harness.errors import ConfigError
from canary_harness.loadgen.journey import UNKNOWN_VERSION, PlannedRequest, Verdict, served_version

REQUESTS_ENV = "CANARY_LOAD_REQUESTS"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
_KEYS = ("path", "method", "weight", "json", "headers", "name", "status")


@dataclass(frozen=True)
class RequestSpec:
    """One kind of request of the mix and how often it is sent relative to the others."""

    path: str
    method: str = "GET"
    weight: float = 1.0
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    status: tuple[int, ...] = ()

    @property
    def stats_name(self) -> str:
        """The key of this request in the load stats."""
        return self.name or f"{self.method} {self.path}"

    def ok(self, status: int) -> bool:
        """Whether ``status`` counts as a success."""
        return status in self.status if self.status else 200 <= status < 400


def _spec(raw: object, where: str) -> RequestSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{where}: must be a table such as {{ path = "/items", weight = 3 }}, got {raw!r}')
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{where}: path {path!r} must be a string starting with '/'")
    method = str(raw.get("method", "GET")).upper()
    if method not in _METHODS:
        raise ConfigError(f"{where}: method {raw.get('method')!r} must be one of {', '.join(_METHODS)}")
    weight = raw.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ConfigError(f"{where}: weight {weight!r} must be a positive number")
    headers = raw.get("headers", {})
    if not isinstance(headers, Mapping) or not all(isinstance(value, str) for value in headers.values()):
        raise ConfigError(f"{where}: headers {headers!r} must be a table of strings")
    status = raw.get("status", [])
    statuses = status if isinstance(status, list) else [status]
    if not all(isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 for code in statuses):
        raise ConfigError(f"{where}: status {status!r} must be an HTTP status or a list of them")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: name {name!r} must be a string")
    return RequestSpec(path, method, float(weight), raw.get("json"), dict(headers), name, tuple(statuses))


def parse_requests(raw: object, source: str) -> tuple[RequestSpec, ...]:
    """The request mix from ``[load] requests`` (a list of tables); ConfigError naming entry and key."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"load requests ({source}): must be a non-empty list of tables, got {raw!r}")
    return tuple(_spec(item, f"load requests ({source}), entry {index + 1}") for index, item in enumerate(raw))


def requests_to_json(specs: Sequence[RequestSpec]) -> str:
    """The mix as JSON, for locust's processes."""
    return json.dumps([{**asdict(spec), "status": list(spec.status)} for spec in specs])


def requests_from_json(text: str, source: str) -> tuple[RequestSpec, ...]:
    """Inverse of ``requests_to_json``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"load requests ({source}): not JSON: {exc}") from exc
    return parse_requests(
        [{key: value for key, value in item.items() if value not in ("", None)} for item in data], source
    )


@dataclass
class RequestMix:
    """A walk that sends one request of the mix per step, each drawn by weight."""

    specs: Sequence[RequestSpec]
    rng: random.Random
    _last: RequestSpec | None = None

    def __post_init__(self) -> None:
        self._cumulative = list(itertools.accumulate(spec.weight for spec in self.specs))

    def next_request(self) -> PlannedRequest:
        """The next request, drawn by weight."""
        index = bisect.bisect_right(self._cumulative, self.rng.random() * self._cumulative[-1])
        spec = self.specs[min(index, len(self.specs) - 1)]
        self._last = spec
        return PlannedRequest(spec.method, spec.path, spec.stats_name, spec.json, headers=spec.headers)

    def record(self, status: int, headers: Mapping[str, str], text: str) -> Verdict:
        """A success when the status is one the request accepts; no other check (any HTTP service)."""
        version = served_version(headers) or UNKNOWN_VERSION
        assert self._last is not None, "record() before next_request()"
        if self._last.ok(status):
            return Verdict(True, "", version)
        return Verdict(False, f"HTTP {status}" if status else "no answer", version)

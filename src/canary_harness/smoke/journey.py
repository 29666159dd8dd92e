"""A smoke journey declared as data: ``[[smoke]]`` steps of canary.toml (or the packaged fragrance-ai one).

Each step is one HTTP request (method, path, headers, JSON body), the status it must answer (200 unless
``status`` says otherwise), assertions on its JSON answer (``expect``: a field path and one of
``exists``, ``equals``, ``prefix``, ``length``, ``one_of``) and fields kept for later steps
(``capture``: variable = field path). Strings may hold ``{variable}``: a capture of an earlier step, or
a built-in (``version``: the version the instance must report, ``mode``: the LLM mode to exercise). A
string that is exactly one ``{variable}`` takes the variable's value with its JSON type.

Everything is checked when the journey is loaded, with a ConfigError naming the step and key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from canary_harness.errors import ConfigError

BUILTINS = frozenset({"version", "mode"})
KINDS = ("exists", "equals", "prefix", "length", "one_of")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_STEP_KEYS = frozenset({"name", "method", "path", "headers", "json", "status", "expect", "capture"})
VARIABLE_RE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_FIELD_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
DEFAULT_JOURNEY = "fragrance-ai.toml"  # the target profile whose [[smoke]] steps are the default


@dataclass(frozen=True)
class Expectation:
    """One assertion on a step's JSON answer: the value at ``field`` (dotted path, list indices as numbers)."""

    field: str
    kind: str
    value: Any = None


@dataclass(frozen=True)
class JourneyStep:
    """One request of the journey and what its answer must be."""

    name: str
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    status: int = 200
    expect: tuple[Expectation, ...] = ()
    capture: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Journey:
    """The steps, in order, and where they were declared (for messages)."""

    steps: tuple[JourneyStep, ...]
    source: str


def variables_in(value: Any) -> set[str]:
    """Every ``{variable}`` named in a string, or in the strings of a list/table, recursively."""
    if isinstance(value, str):
        return set(VARIABLE_RE.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(variables_in(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(variables_in(item) for item in value)) if value else set()
    return set()


def _check_field(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not _FIELD_RE.match(raw):
        raise ConfigError(f"{where}: field {raw!r} must be a dotted path such as 'options.0.id'")
    return raw


def _expectation(raw: object, where: str) -> Expectation:
    if not isinstance(raw, Mapping) or "field" not in raw:
        raise ConfigError(f"{where}: must be a table with 'field' and one of {', '.join(KINDS)}, got {raw!r}")
    kinds = [key for key in raw if key != "field"]
    if len(kinds) != 1 or kinds[0] not in KINDS:
        raise ConfigError(f"{where}: needs exactly one of {', '.join(KINDS)} beside 'field', got {sorted(kinds)}")
    kind, value = kinds[0], raw[kinds[0]]
    if kind == "exists" and value is not True:
        raise ConfigError(f"{where}: exists = {value!r}: only exists = true is meaningful")
    if kind == "length" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"{where}: length = {value!r}: must be an integer ≥ 0")
    if kind == "prefix" and not isinstance(value, str):
        raise ConfigError(f"{where}: prefix = {value!r}: must be a string")
    if kind == "one_of" and not (isinstance(value, list) and value):
        raise ConfigError(f"{where}: one_of = {value!r}: must be a non-empty list")
    return Expectation(_check_field(raw["field"], where), kind, value)


def _step(raw: object, index: int, source: str, known: set[str]) -> JourneyStep:
    where = f"{source}, step {index + 1}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table, got {raw!r}")
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_STEP_KEYS))}")
    method = str(raw.get("method", "GET")).upper()
    if method not in METHODS:
        raise ConfigError(f"{where}: method {raw.get('method')!r}: must be one of {', '.join(METHODS)}")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{where}: path {path!r}: must be a string starting with '/'")
    headers = raw.get("headers", {})
    if not isinstance(headers, Mapping) or not all(isinstance(value, str) for value in headers.values()):
        raise ConfigError(f"{where}: headers {headers!r}: must be a table of strings")
    status = raw.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ConfigError(f"{where}: status {status!r}: must be an HTTP status 100..599")
    expect_raw = raw.get("expect", [])
    if not isinstance(expect_raw, list):
        raise ConfigError(f"{where}: expect {expect_raw!r}: must be a list of tables")
    expect = tuple(_expectation(item, f"{where}, expect {n + 1}") for n, item in enumerate(expect_raw))
    capture = raw.get("capture", {})
    if not isinstance(capture, Mapping):
        raise ConfigError(f"{where}: capture {capture!r}: must be a table of variable = field path")
    for name, path_of in capture.items():
        if not VARIABLE_RE.fullmatch("{" + str(name) + "}") or name in BUILTINS:
            raise ConfigError(f"{where}: capture {name!r}: must be a lower-case name other than {sorted(BUILTINS)}")
        _check_field(path_of, f"{where}, capture {name!r}")
    name = raw.get("name", f"{method} {path}")
    used = variables_in([name, path, dict(headers), raw.get("json"), [e.value for e in expect]])
    undefined = sorted(used - known - BUILTINS)
    if undefined:
        raise ConfigError(
            f"{where}: uses {', '.join('{' + u + '}' for u in undefined)} before any step captures it "
            f"(captured so far: {', '.join(sorted(known)) or 'nothing'}; built-in: {', '.join(sorted(BUILTINS))})"
        )
    known.update(str(key) for key in capture)
    return JourneyStep(
        name=str(name),
        method=method,
        path=path,
        headers=dict(headers),
        body=raw.get("json"),
        status=status,
        expect=expect,
        capture={str(key): str(value) for key, value in capture.items()},
    )


def parse_journey(raw: object, source: str) -> Journey:
    """A Journey from a list of step tables (the value of ``smoke`` in a TOML document)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: must be a non-empty array of [[smoke]] tables, got {raw!r}")
    known: set[str] = set()
    return Journey(tuple(_step(item, n, source, known) for n, item in enumerate(raw)), source)


def default_journey() -> Journey:
    """fragrance-ai's journey, packaged with the harness."""
    text = resources.files("canary_harness").joinpath("profiles", DEFAULT_JOURNEY).read_text(encoding="utf-8")
    return parse_journey(tomllib.loads(text)["smoke"], f"the built-in {DEFAULT_JOURNEY} journey")


def journey_from(toml: Mapping[str, Any], source: str = "canary.toml") -> Journey:
    """canary.toml's ``[[smoke]]`` steps when it has them, else fragrance-ai's journey."""
    if "smoke" in toml:
        return parse_journey(toml["smoke"], f"{source} [[smoke]]")
    return default_journey()

"""Is an instance healthy, and which version does it run: how a target answers its health check.

fragrance-ai answers ``GET /health`` with 200 and ``{"status": "healthy", "version": "v0.2.0"}``; another
service may answer a plain 200 and tell its version in a response header, or not at all. A
``HealthProbe`` says which: the path, the JSON field and value that mean healthy (none: any 200 is
healthy), and where the version is read (a JSON field, a response header, or nowhere). It travels with
each service's spec and recorded handle, so every later check asks the same question.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from canary_harness.errors import BackendError, ConfigError


@dataclass(frozen=True)
class HealthProbe:
    """How to ask one target whether it is healthy and which version it runs."""

    path: str = "/health"
    status_field: str | None = "status"
    status_value: str = "healthy"
    version_field: str | None = "version"
    version_header: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the stack's state file)."""
        return {
            "path": self.path,
            "status_field": self.status_field,
            "status_value": self.status_value,
            "version_field": self.version_field,
            "version_header": self.version_header,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> HealthProbe:
        """Inverse of ``to_json``; fragrance-ai's probe for state files written before probes existed."""
        if not data:
            return FRAGRANCE_PROBE
        return cls(
            path=str(data.get("path", "/health")),
            status_field=_text_or_none(data.get("status_field")),
            status_value=str(data.get("status_value", "healthy")),
            version_field=_text_or_none(data.get("version_field")),
            version_header=_text_or_none(data.get("version_header")),
        )

    @property
    def checks_version(self) -> bool:
        """Whether the target reports its version at all (else the version is taken on trust)."""
        return self.version_field is not None or self.version_header is not None

    def describe(self) -> str:
        """One line for messages: what healthy means for this target."""
        healthy = f"{self.status_field} = {self.status_value!r}" if self.status_field else "HTTP 200"
        if self.version_field:
            version = f"version in JSON field {self.version_field!r}"
        elif self.version_header:
            version = f"version in header {self.version_header}"
        else:
            version = "no version reported"
        return f"GET {self.path} answers {healthy}; {version}"


FRAGRANCE_PROBE = HealthProbe()


def _text_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def probe_from_mapping(data: Mapping[str, Any], source: str) -> HealthProbe:
    """A probe from a target's ``health`` table; ConfigError naming the key and ``source``."""
    known = ("path", "status_field", "status_value", "version_field", "version_header")
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown health key {key!r} ({source}); known keys: {', '.join(known)}")
    for key in known:
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"health {key} = {data[key]!r} ({source}): must be a string ('' for none)")
    path = data.get("path", "/health")
    if not path.startswith("/"):
        raise ConfigError(f"health path = {path!r} ({source}): must start with '/'")
    probe = HealthProbe(
        path=path,
        status_field=_text_or_none(data.get("status_field", "")),
        status_value=str(data.get("status_value", "healthy")),
        version_field=_text_or_none(data.get("version_field", "")),
        version_header=_text_or_none(data.get("version_header", "")),
    )
    if probe.version_field and probe.version_header:
        raise ConfigError(f"health ({source}): give version_field or version_header, not both")
    return probe


@functools.cache
def _http() -> httpx.Client:
    # One client per process: building one sets up TLS contexts (~50 ms), which loopback HTTP never uses.
    return httpx.Client(verify=False)


def health(url: str, timeout: float = 2.0, probe: HealthProbe = FRAGRANCE_PROBE) -> dict[str, object] | None:
    """``{"status": "healthy", "version": V or None}`` while ``url`` answers its health check, else None."""
    try:
        response = _http().get(url.rstrip("/") + probe.path, timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    data: Any = {}
    if probe.status_field or probe.version_field:
        try:
            data = response.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
    if probe.status_field and data.get(probe.status_field) != probe.status_value:
        return None
    version: object = None
    if probe.version_field:
        version = data.get(probe.version_field)
    elif probe.version_header:
        version = response.headers.get(probe.version_header)
    return {**data, "status": "healthy", "version": version}


def reported_version(url: str, timeout: float = 2.0, probe: HealthProbe = FRAGRANCE_PROBE) -> str | None:
    """The version the instance reports while it answers healthy, else None."""
    data = health(url, timeout, probe)
    if data is None or data.get("version") is None:
        return None
    return str(data["version"])


def check_reported_version(data: Mapping[str, object], version: str, probe: HealthProbe) -> bool:
    """True once a healthy answer is in; BackendError if it reports another version than ``version``
    (a target that reports no version is taken on trust)."""
    if probe.checks_version and data.get("version") != version:
        raise BackendError(f"{probe.path} reports version {data.get('version')!r}, expected {version!r}")
    return True

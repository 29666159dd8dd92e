"""The canary.toml ``[metrics]`` table: where a stage reads each arm's counters.

``source = "service"`` (the default) reads each instance's ``/metrics`` (or Prometheus, with
``--prometheus``); ``source = "nginx-log"`` computes them from NGINX's own access log, for services that
expose no metrics. ``journey_route`` is the route whose requests count as journeys (the split check's
units; "" counts requests instead), ``log`` the access log of an NGINX the harness did not start,
``default_group`` the latency group of requests without a group header (none: left out of latency).
``counters``: where the counters of the judge's ratio checks are read: "service" (each instance's
``/metrics``, or Prometheus with ``--canary-prometheus``; also under ``nginx-log``) or "none" (the service
exposes none: a ratio check is refused at load).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.configuration.parsers import table_of
from canary_harness.errors import ConfigError

SOURCES = ("service", "nginx-log")
_GROUP_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_KEYS = ("source", "journey_route", "log", "default_group", "counters")
COUNTER_SOURCES = ("service", "none")


@dataclass(frozen=True)
class MetricsSettings:
    """Which metrics source a stage uses, and the nginx-log source's settings."""

    source: str = "service"
    journey_route: str | None = "/dna/create"
    log: Path | None = None
    default_group: str | None = None
    counters: str = "service"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> MetricsSettings:
        """Settings from a ``[metrics]`` table; ConfigError names the key, its value and ``source``."""
        data = table_of(data, "metrics", _KEYS, source)
        kind = data.get("source", cls.source)
        if kind not in SOURCES:
            raise ConfigError(f"[metrics] source = {kind!r} ({source}): must be one of {', '.join(SOURCES)}")
        route = data.get("journey_route", cls.journey_route)
        if not isinstance(route, str) or (route and not route.startswith("/")):
            raise ConfigError(
                f"[metrics] journey_route = {route!r} ({source}): must be a path such as '/checkout', or ''"
            )
        log = data.get("log")
        if log is not None and (not isinstance(log, str) or not log.strip()):
            raise ConfigError(f"[metrics] log = {log!r} ({source}): must be the path of NGINX's JSON access log")
        group = data.get("default_group", "")
        if not isinstance(group, str) or (group and not _GROUP_RE.match(group)):
            raise ConfigError(
                f"[metrics] default_group = {group!r} ({source}): must be a name of letters, digits, '_.:-'"
            )
        counters = data.get("counters", cls.counters)
        if counters not in COUNTER_SOURCES:
            raise ConfigError(
                f"[metrics] counters = {counters!r} ({source}): must be one of {', '.join(COUNTER_SOURCES)}"
            )
        return cls(
            source=kind,
            journey_route=route or None,
            log=Path(log) if log else None,
            default_group=group or None,
            counters=counters,
        )

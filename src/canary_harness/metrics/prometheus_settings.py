"""The canary.toml ``[prometheus]`` table: which Prometheus, which job and version labels, which queries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary_harness.config import parse_positive_float
from canary_harness.configuration.parsers import table_of
from canary_harness.errors import ConfigError
from canary_harness.metrics.promql import (
    DEFAULT_QUERIES,
    DEFAULT_VERSION_LABELS,
    DEFAULT_WINDOW_S,
    JOB,
    check_label_value,
    queries_from_mapping,
)


@dataclass(frozen=True)
class PrometheusSettings:
    """The canary.toml ``[prometheus]`` table: where, which job and version labels, which queries.

    ``url`` (None: no external Prometheus), ``job``, ``versions`` (arm -> value of the ``version``
    target label), ``window_s`` (window of the figures), ``timeout_s`` (per HTTP request) and
    ``queries`` (DEFAULT_QUERIES with ``[prometheus.queries]`` applied).
    """

    url: str | None = None
    job: str = JOB
    versions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_VERSION_LABELS))
    window_s: float = DEFAULT_WINDOW_S
    timeout_s: float = 5.0
    queries: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_QUERIES))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> PrometheusSettings:
        """Settings from a ``[prometheus]`` table; ConfigError names the key, its value and ``source``."""
        data = table_of(data, "prometheus", ("url", "job", "versions", "window", "timeout", "queries"), source)
        base = cls()
        url = base.url if "url" not in data else check_base_url(data["url"], f"{source}, key 'url'")
        job = check_label_value(data.get("job", base.job), "job", f"{source}, key 'job'")
        versions = dict(base.versions)
        raw_versions = data.get("versions", {})
        if not isinstance(raw_versions, Mapping):
            raise ConfigError(f"[prometheus.versions] ({source}): must be a table, got {raw_versions!r}")
        for role, label in raw_versions.items():
            if role not in DEFAULT_VERSION_LABELS:
                raise ConfigError(
                    f"[prometheus.versions] key {role!r} ({source}): must be one of {', '.join(DEFAULT_VERSION_LABELS)}"
                )
            where = f"{source}, versions.{role}"
            versions[role] = check_label_value(label, f"version label of {role}", where)
        window = parse_positive_float(data.get("window", base.window_s), f"{source}, key 'window'")
        timeout = parse_positive_float(data.get("timeout", base.timeout_s), f"{source}, key 'timeout'")
        queries = queries_from_mapping(data.get("queries", {}), f"{source} [prometheus.queries]")
        return cls(url=url, job=job, versions=versions, window_s=window, timeout_s=timeout, queries=queries)


def check_base_url(raw: object, source: str) -> str:
    """A Prometheus base URL (``http(s)://host:port[/prefix]``), without a trailing slash."""
    text = str(raw).strip()
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", text):
        raise ConfigError(f"Prometheus URL {raw!r} ({source}): must look like http://127.0.0.1:9090")
    return text.rstrip("/")

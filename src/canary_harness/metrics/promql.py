"""The PromQL query templates of the Prometheus source: the default queries, the rules a user's override
must follow, and filling their holes.

Each arm is the scrape target labelled ``version="production"`` or ``version="canary"`` (a target
label, so it never clashes with the service's own ``app_version`` label) in the job ``fragrance-ai``.
Templates name their holes ``{job}``, ``{version}``, ``{window}`` and ``{mode}``; PromQL's own braces
(label matchers) are left alone, because a matcher always has an operator and a hole never has one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from canary_harness.errors import ConfigError

JOB = "fragrance-ai"
DEFAULT_VERSION_LABELS: Mapping[str, str] = MappingProxyType({"production": "production", "canary": "canary"})
DEFAULT_WINDOW_S = 60.0

_TARGET = 'job="{job}",version="{version}"'
_API = _TARGET + ',route!~"/health|/metrics"'

DEFAULT_QUERIES: Mapping[str, str] = MappingProxyType({
    # snapshot(): cumulative counters of one arm at one instant
    "present": f"count by (app_version) (http_requests_total{{{_TARGET}}})",
    "requests": f"sum(http_requests_total{{{_API}}})",
    "errors_5xx": f'sum(http_requests_total{{{_API},status=~"5.."}})',
    "journeys": f'sum(http_requests_total{{{_TARGET},route="/dna/create"}})',
    "latency_buckets": f'sum by (mode, le) (http_request_duration_seconds_bucket{{{_TARGET},mode!="none"}})',
    "briefs": f"sum(llm_brief_total{{{_TARGET}}})",
    "schema_failures": f"sum(llm_brief_schema_failures_total{{{_TARGET}}})",
    "rl_updates": f"sum(rl_update_loss_count{{{_TARGET}}})",
    "rl_loss_sum": f"sum(rl_update_loss_sum{{{_TARGET}}})",
    # last_scrape(): start of the arm's latest successful scrape (unix seconds)
    "last_scrape": f"max(timestamp(up{{{_TARGET}}}) and up{{{_TARGET}}} == 1)",
    # scrapes(): the arm's raw scrape results over {window} (a range vector: one point per scrape)
    "scrapes": f"up{{{_TARGET}}}[{{window}}]",
    # figures(): the classic checks over {window}
    "request_rate": f"sum(rate(http_requests_total{{{_API}}}[{{window}}]))",
    "error_rate": (
        f'(sum(rate(http_requests_total{{{_API},status=~"5.."}}[{{window}}])) or vector(0))'
        f" / sum(rate(http_requests_total{{{_API}}}[{{window}}]))"
    ),
    "p95": (
        "histogram_quantile(0.95, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{{_TARGET},mode="{{mode}}"}}[{{window}}])))'
    ),
    # "or vector(0)" only while the target is present: a dead target gives no data, never 0.
    "schema_failures_increase": (
        f"(sum(increase(llm_brief_schema_failures_total{{{_TARGET}}}[{{window}}])) or vector(0))"
        f" and on() count(http_requests_total{{{_TARGET}}})"
    ),
    "rl_loss_mean": (
        f"sum(increase(rl_update_loss_sum{{{_TARGET}}}[{{window}}]))"
        f" / sum(increase(rl_update_loss_count{{{_TARGET}}}[{{window}}]))"
    ),
})  # fmt: skip

SNAPSHOT_COUNTERS: tuple[str, ...] = (
    "requests", "errors_5xx", "journeys", "briefs", "schema_failures", "rl_updates", "rl_loss_sum",
)  # fmt: skip
FIGURE_QUERIES: tuple[str, ...] = (
    "request_rate", "error_rate", "p95", "schema_failures_increase", "rl_loss_mean",
)  # fmt: skip

_HOLE_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")


# --------------------------------------------------------------------------- templates
def _placeholder_rules(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """(required, allowed) holes of the query ``name``."""
    required = {"version"}
    if name in FIGURE_QUERIES or name == "scrapes":
        required.add("window")
    if name == "p95":
        required.add("mode")
    return frozenset(required), frozenset(required | {"job"})


def check_template(name: str, template: object, source: str) -> str:
    """A query template after checking its name and holes; ConfigError naming ``source`` otherwise."""
    if name not in DEFAULT_QUERIES:
        raise ConfigError(f"unknown Prometheus query {name!r} ({source}); known queries: {', '.join(DEFAULT_QUERIES)}")
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"Prometheus query {name!r} = {template!r} ({source}): must be a non-empty string")
    required, allowed = _placeholder_rules(name)
    holes = set(_HOLE_RE.findall(template))
    unknown = holes - allowed
    if unknown:
        raise ConfigError(
            f"Prometheus query {name!r} ({source}) uses unknown placeholder(s) "
            f"{', '.join('{' + hole + '}' for hole in sorted(unknown))}; "
            f"this query may use {', '.join('{' + hole + '}' for hole in sorted(allowed))}"
        )
    missing = required - holes
    if missing:
        raise ConfigError(
            f"Prometheus query {name!r} ({source}) lacks placeholder(s) "
            f"{', '.join('{' + hole + '}' for hole in sorted(missing))}: without them it would not "
            "select one arm (or one window / mode)"
        )
    return template


def queries_from_mapping(data: Mapping[str, Any], source: str) -> dict[str, str]:
    """DEFAULT_QUERIES with the overrides of a canary.toml ``[prometheus.queries]`` table applied.

    Every name must be a known query and every template must use exactly the placeholders its
    query allows ({version} always; {window} in figure queries; {mode} in p95; {job} optionally).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"Prometheus queries ({source}): must be a table of name = PromQL, got {data!r}")
    merged = dict(DEFAULT_QUERIES)
    for name, template in data.items():
        merged[str(name)] = check_template(str(name), template, f"{source}, key {name!r}")
    return merged


def check_label_value(value: object, what: str, source: str) -> str:
    """A label value safe to put inside a PromQL double-quoted string (no quotes, no backslashes)."""
    text = str(value)
    if not _LABEL_VALUE_RE.match(text):
        raise ConfigError(
            f"{what} {value!r} ({source}): must be 1-128 letters, digits or '_.:+-' "
            "(it is placed inside a PromQL label matcher)"
        )
    return text


def promql_duration(seconds: float) -> str:
    """A PromQL range duration for ``seconds``: whole seconds as ``60s``, otherwise milliseconds."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"window {seconds!r}: must be a positive number of seconds")
    millis = round(seconds * 1000)
    if millis < 1:
        raise ConfigError(f"window {seconds!r}: must be at least one millisecond")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the ``{hole}`` placeholders of ``template`` (PromQL label-matcher braces are untouched)."""

    def fill(match: re.Match[str]) -> str:
        hole = match.group(1)
        if hole not in values:
            raise ConfigError(f"query {template!r}: no value for placeholder {{{hole}}}")
        return values[hole]

    return _HOLE_RE.sub(fill, template)

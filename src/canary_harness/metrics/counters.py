"""Named counters of a service, for the judge's counter-ratio checks (``[[judge.ratios]]``).

A :class:`CounterSelector` is a counter name with optional label matchers, as in PromQL:
``hello_orders_total{outcome="failed"}``. Its value on an instance is the sum of the matching series of
that counter. Where it is read:

- the service's own ``/metrics`` (the default ``source = "service"``, and ``source = "nginx-log"``, whose
  requests and latency come from NGINX's log while the business counters stay on the service):
  :func:`counter_sums` over the exposition text;
- Prometheus (``--canary-prometheus``): ``sum(name{job, version, matchers})`` per arm, evaluated at the
  same instant as the other counters (:meth:`CounterSelector.promql`).

A counter that the instance does not declare at all, or that is declared with another ``# TYPE`` (a gauge),
is an error naming the metric and the URL: a ratio of a gauge's deltas means nothing. A declared labelled
counter without any series yet is 0 (the client library creates a series on its first increment).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from canary_harness.errors import ConfigError, MetricsError
from canary_harness.metrics.protocol import MetricsSource
from canary_harness.metrics.types import MetricsSnapshot

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"\\]*)"\s*')
# Labels the Prometheus source sets itself to pick an arm: a matcher on them would select another arm.
RESERVED_LABELS = frozenset({"job", "version", "instance"})


@dataclass(frozen=True)
class CounterSelector:
    """A counter and its label matchers; ``text`` is its canonical spelling (the key in snapshots)."""

    name: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    @property
    def text(self) -> str:
        """``name{label="value",...}`` (matchers in the order given), or the bare name."""
        if not self.matchers:
            return self.name
        return self.name + "{" + ",".join(f'{label}{op}"{value}"' for label, op, value in self.matchers) + "}"

    @classmethod
    def parse(cls, raw: object, where: str) -> CounterSelector:
        """Parse ``name`` or ``name{label="v", label!="v", label=~"re", label!~"re"}``; ConfigError names ``where``."""
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"{where} = {raw!r}: must be a counter name such as 'orders_total{{outcome=\"failed\"}}'")
        text = raw.strip()
        name_match = _NAME_RE.match(text)
        if name_match is None:
            raise ConfigError(f"{where} = {raw!r}: must start with a metric name (letters, digits, '_', ':')")
        name, rest = name_match.group(0), text[name_match.end() :].strip()
        matchers: list[tuple[str, str, str]] = []
        if rest:
            if not (rest.startswith("{") and rest.endswith("}")):
                raise ConfigError(f'{where} = {raw!r}: after the name only {{label="value", ...}} may follow')
            body = rest[1:-1].strip()
            for part in filter(None, (piece.strip() for piece in _split_matchers(body))):
                found = _MATCHER_RE.fullmatch(part)
                if found is None:
                    raise ConfigError(
                        f'{where} = {raw!r}: matcher {part!r} must be label="value" (operators =, !=, =~, !~; '
                        "no quotes or backslashes in the value)"
                    )
                label, op, value = found.groups()
                if label in RESERVED_LABELS:
                    raise ConfigError(f"{where} = {raw!r}: label {label!r} is the harness's own (it picks the arm)")
                if op in ("=~", "!~"):
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise ConfigError(f"{where} = {raw!r}: bad regular expression {value!r}: {exc}") from None
                matchers.append((label, op, value))
        return cls(name, tuple(matchers))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series with ``labels`` is selected (a missing label is the empty string, as in PromQL)."""
        for label, op, value in self.matchers:
            have = labels.get(label, "")
            if op == "=" and have != value or op == "!=" and have == value:
                return False
            if op == "=~" and not re.fullmatch(value, have) or op == "!~" and re.fullmatch(value, have):
                return False
        return True

    def promql(self, target: str) -> str:
        """``sum(name{<target>,matchers})``: the arm's total of the selected series, ``target`` its own matchers."""
        inner = ",".join([target, *(f'{label}{op}"{value}"' for label, op, value in self.matchers)])
        return f"sum({self.name}{{{inner}}})"


def _split_matchers(body: str) -> list[str]:
    """Split ``a="x",b!="y,z"`` on the commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def counter_sums(text: str, selectors: Sequence[CounterSelector]) -> dict[str, float]:
    """Each selector's sum over the exposition ``text`` (pure); MetricsError when one is absent or no counter."""
    if not selectors:
        return {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise MetricsError(f"unparseable metrics exposition: {exc}") from exc
    kinds: dict[str, str] = {}  # sample name -> the type of the family declaring it
    for family in families:
        kinds[family.name] = family.type
        if family.type == "counter":
            kinds[family.name + "_total"] = "counter"  # the parser names a counter family without _total
        for sample in family.samples:
            kinds.setdefault(sample.name, family.type)
    sums: dict[str, float] = {}
    for selector in selectors:
        kind = kinds.get(selector.name)
        if kind is None:
            raise MetricsError(f"counter {selector.name} is not exposed (no such metric)")
        if kind != "counter":
            raise MetricsError(
                f"metric {selector.name} is a {kind}, not a counter: a ratio of its changes means nothing"
            )
        total = 0.0
        for family in families:
            for sample in family.samples:
                if sample.name == selector.name and selector.matches(sample.labels):
                    if not (math.isfinite(sample.value) and sample.value >= 0):
                        raise MetricsError(
                            f"counter {selector.name}{sample.labels} has value {sample.value}: a count must be "
                            "finite and >= 0"
                        )
                    total += sample.value
        sums[selector.text] = total
    return sums


def read_counters(
    client: httpx.Client, role: str, base_url: str, selectors: Sequence[CounterSelector]
) -> dict[str, float]:
    """The selectors' sums on ``<base_url>/metrics``; MetricsError names the arm, the URL and the metric."""
    url = base_url.rstrip("/") + "/metrics"
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise MetricsError(f"{role} counters at {url} unreachable: {exc.__class__.__name__}: {exc}") from exc
    if response.status_code != 200:
        raise MetricsError(f"{role} counters at {url}: HTTP {response.status_code} (does the service expose /metrics?)")
    try:
        return counter_sums(response.text, selectors)
    except MetricsError as exc:
        raise MetricsError(f"{role} metrics at {url}: {exc}") from exc


class WithCounters:
    """A MetricsSource whose snapshots also carry named counters read from each arm's own ``/metrics``.

    Wraps a source that has no counters of its own (NGINX's log): requests and latency come from it,
    the business counters from the service, read right after it (milliseconds apart).
    """

    def __init__(
        self,
        inner: MetricsSource,
        urls: Mapping[str, str],
        selectors: Sequence[CounterSelector],
        *,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.inner = inner
        self.urls = dict(urls)
        self.selectors = tuple(selectors)
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None

    def _with(self, role: str, snapshot: MetricsSnapshot) -> MetricsSnapshot:
        if role not in self.urls:
            raise MetricsError(f"no URL to read the counters of arm {role!r} from")
        counters = read_counters(self._client, role, self.urls[role], self.selectors)
        return dataclasses.replace(snapshot, counters=counters)

    def snapshot(self, role: str) -> MetricsSnapshot:
        """The inner source's snapshot of the arm, with the counters."""
        return self._with(role, self.inner.snapshot(role))

    def snapshots(self, roles: Sequence[str]) -> dict[str, MetricsSnapshot]:
        """The inner source's arms at one instant, each with its counters."""
        return {role: self._with(role, snapshot) for role, snapshot in self.inner.snapshots(roles).items()}

    def close(self) -> None:
        """Close the inner source, and the HTTP client if this wrapper created it."""
        self.inner.close()
        if self._owns_client:
            self._client.close()

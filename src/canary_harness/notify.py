"""Webhook notifications of a rollout: the events (stage applied, verdict, rollback, promotion) and their delivery.

An event is a JSON object with a Slack-compatible ``text`` line plus structured fields. Events are built
from chosen fields of the stage record only, so environment VALUES given to the services (tokens, fault
switches) never reach a receiver. Delivery has a timeout and retries and never raises: a receiver that is
down must not change a stage's verdict or exit code, it only costs a warning line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from canary_harness.errors import ConfigError
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stages import stage_label

SCHEMA = "canary-harness/notify/v1"


@dataclass(frozen=True)
class NotifySettings:
    """Receivers and delivery policy (``[notify]`` in canary.toml, ``--canary-notify`` adds URLs)."""

    urls: tuple[str, ...] = ()
    timeout_s: float = 5.0
    retries: int = 2  # attempts after the first
    backoff_s: float = 0.5

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str, extra_urls: Sequence[str] = ()) -> NotifySettings:
        """Parse ``[notify]``: urls (list), timeout_s (> 0), retries (≥ 0); unknown keys are refused."""
        known = {"urls", "timeout_s", "retries"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        urls = data.get("urls", [])
        if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
            raise ConfigError(f"{source}: urls must be a list of strings, got {urls!r}")
        timeout = data.get("timeout_s", cls.timeout_s)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"{source}: timeout_s must be a positive number of seconds, got {timeout!r}")
        retries = data.get("retries", cls.retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"{source}: retries must be an integer ≥ 0, got {retries!r}")
        all_urls = [*urls, *extra_urls]
        for url in all_urls:
            check_url(url, source if url in urls else "flag --canary-notify / --notify")
        return cls(urls=tuple(dict.fromkeys(all_urls)), timeout_s=float(timeout), retries=retries)


def check_url(url: str, source: str) -> str:
    """An http(s) URL with a host; ConfigError naming the value and its source otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"notify URL {url!r} ({source}): must be an http:// or https:// URL with a host")
    return url


def _base(event: str, version: str, stage: int | None, text: str) -> dict[str, Any]:
    return {"schema": SCHEMA, "event": event, "time": time.time(), "version": version, "stage": stage, "text": text}


def stage_applied(record: StageRecord) -> dict[str, Any]:
    """The canary is up and the stage's weight is in force."""
    weight = record.weight_in_force if record.weight_in_force is not None else record.stage
    what = "dry run started" if record.dry_run else f"{weight} % of traffic on the canary"
    return {
        **_base(
            "stage_applied",
            record.canary_version,
            record.stage,
            f"canary {record.canary_version}: stage {stage_label(record.stage)} applied ({what}); observing",
        ),
        "production_version": record.production_version,
        "weight": weight,
        "dry_run": record.dry_run,
    }


def verdict(record: StageRecord) -> dict[str, Any]:
    """The stage's verdict, with each failed check's one-line message (metric, value, threshold, sample)."""
    data = record.verdict or {}
    state = str(data.get("state", "ERROR"))
    failed = [
        {"name": check.get("name"), "message": check.get("message")}
        for check in data.get("checks", [])
        if check.get("state") == "FAIL"
    ]
    reason = record.error or str(data.get("reason", ""))
    warning = bool(data.get("warning"))
    text = (
        f"canary {record.canary_version}: stage {stage_label(record.stage)} verdict {state}"
        f"{' (with warning)' if warning else ''}: {reason}"
    )
    return {
        **_base("verdict", record.canary_version, record.stage, text),
        "state": state,
        "warning": warning,
        "reason": reason,
        "elapsed_s": data.get("elapsed_s"),
        "failed_checks": failed,
        "harness_error": record.error,
    }


def rollback(version: str, stage: int | None, reason: str, weight_after: int | None, ok: bool = True) -> dict[str, Any]:
    """A rollback ran (``ok``) or could not restore weight 0 (the canary may still receive traffic)."""
    if ok:
        text = f"canary {version}: rolled back at stage {stage_label(stage)} (weight now {weight_after} %): {reason}"
    else:
        text = f"canary {version}: ROLLBACK FAILED at stage {stage_label(stage)}: {reason}; run `canary rollback`"
    return {
        **_base("rollback" if ok else "rollback_failed", version, stage, text),
        "reason": reason,
        "weight_after": weight_after,
    }


def promotion(version: str) -> dict[str, Any]:
    """Production now runs the release."""
    return _base("promotion", version, None, f"canary {version}: promoted, production now runs it")


@dataclass
class Notifier:
    """Posts events to every receiver; failures are reported through ``warn``, never raised."""

    settings: NotifySettings
    warn: Callable[[str], None]
    client: httpx.Client = field(default_factory=lambda: httpx.Client())
    sent: list[tuple[str, str]] = field(default_factory=list)  # (url, event) delivered

    def send(self, event: Mapping[str, Any]) -> None:
        """Deliver one event to every URL: ``1 + retries`` attempts each, backing off between them."""
        for url in self.settings.urls:
            self._deliver(url, event)

    def _deliver(self, url: str, event: Mapping[str, Any]) -> None:
        attempts = 1 + self.settings.retries
        last = ""
        for attempt in range(attempts):
            try:
                response = self.client.post(url, json=dict(event), timeout=self.settings.timeout_s)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self.sent.append((url, str(event["event"])))
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses this event: asking again will not help
            if attempt + 1 < attempts:
                time.sleep(self.settings.backoff_s * (2**attempt))  # back off before the next attempt
        self.warn(f"canary: notify {url}: {event['event']} not delivered ({last}); the stage goes on")

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def promotion_notifier(toml: Mapping[str, Any], extra_urls: Sequence[str]) -> Callable[[str], None]:
    """For ``canary promote``: a function posting the promotion of a version (settings checked up front)."""
    settings = NotifySettings.from_mapping(toml.get("notify", {}), "canary.toml [notify]", extra_urls)

    def send(version: str) -> None:
        if not settings.urls:
            return
        notifier = Notifier(settings, lambda text: print(text, file=sys.stderr, flush=True))
        try:
            notifier.send(promotion(version))
        finally:
            notifier.close()

    return send

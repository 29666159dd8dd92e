"""Where a stage reads its metrics: each instance's /metrics by default, PromQL from a Prometheus (given,
or started for the stage and waited on until it scrapes both arms), or NGINX's access log."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from urllib.parse import urlsplit

from canary_harness.errors import ConfigError
from canary_harness.judge.ratio_settings import selectors
from canary_harness.judge.settings import JudgeSettings
from canary_harness.metrics.counters import CounterSelector, WithCounters
from canary_harness.metrics.nginx_log import DEFAULT_EDGES, NginxLogSource
from canary_harness.metrics.prometheus import PrometheusSource
from canary_harness.metrics.prometheus_server import LocalPrometheus
from canary_harness.metrics.prometheus_settings import PrometheusSettings
from canary_harness.metrics.protocol import MetricsSource
from canary_harness.metrics.scrape import ScrapeSource
from canary_harness.metrics.source_settings import MetricsSettings
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.reporting.longwait import LongWait
from canary_harness.stack_state import load_state

# Prometheus 2.42 picks up new targets on a fixed 5 s cycle: allow a few of them.
PROMETHEUS_READY_S = 20.0


def metrics_source(
    options: StageOptions, record: StageRecord, stack: ExitStack, say: Callable[[str], None]
) -> MetricsSource:
    """Each instance's /metrics by default; a Prometheus (given, or started for the stage) if asked.

    What it opens or starts is closed or stopped by ``stack``."""
    assert record.canary_url and record.production_url
    urls = {"canary": record.canary_url, "production": record.production_url}
    settings = PrometheusSettings.from_mapping(options.toml.get("prometheus", {}), "canary.toml [prometheus]")
    url = options.prometheus_url or settings.url  # the flag (or its env/ini twin), else [prometheus] url
    chosen = MetricsSettings.from_mapping(options.toml.get("metrics", {}), "canary.toml [metrics]")
    counters = ratio_counters(options)
    if chosen.source == "nginx-log":
        from_log = nginx_log_source(options, urls, chosen)
        say(f"canary: reading metrics from NGINX's access log {from_log.log_path}")
        if counters:
            # Requests and latency from the log, the ratio checks' business counters from the service itself.
            say(f"canary: reading {', '.join(c.text for c in counters)} from each instance's /metrics")
            return stack.enter_context(closing(WithCounters(from_log, urls, counters)))
        return stack.enter_context(closing(from_log))
    # The canary's workers are part of its arm: their counters (RL updates, briefs) add to the API's.
    arms = {
        "canary": [record.canary_url, *(worker["url"] for worker in record.canary_workers)],
        "production": [record.production_url],
    }
    if url is None and options.prometheus == "off":
        return stack.enter_context(closing(ScrapeSource(arms, counters=counters)))
    if url is None:
        targets = {role: [urlsplit(address).netloc for address in addresses] for role, addresses in arms.items()}
        server = stack.enter_context(
            LocalPrometheus(
                targets,
                run_dir=options.stack.run_dir / "prometheus",
                job=settings.job,
                scrape_interval_s=min(1.0, options.tick),
            )
        )
        with LongWait(f"canary: waiting for the local Prometheus (pid {server.pid}) to scrape both arms", say=say):
            server.wait_for_targets_up(PROMETHEUS_READY_S)
        url = server.url
        say(f"canary: local Prometheus {url} (pid {server.pid}) scraping both arms")
    say(f"canary: reading metrics through PromQL from {url}")
    source = stack.enter_context(closing(PrometheusSource.from_settings(settings, url, counters=counters)))
    for role in urls:
        source.wait_for_scrape(role, time.time(), PROMETHEUS_READY_S)
    return source


def ratio_counters(options: StageOptions) -> tuple[CounterSelector, ...]:
    """The counters the stage's ratio checks divide (none when there are none or the family is off)."""
    judge = JudgeSettings.from_mapping(options.toml.get("judge", {}), "canary.toml [judge]")
    return selectors(judge.ratios) if "ratio" in judge.checks else ()


def nginx_log_source(options: StageOptions, urls: dict[str, str], settings: MetricsSettings) -> NginxLogSource:
    """The arms' counters from the stage's NGINX access log (the managed NGINX's, or ``[metrics] log``)."""
    if options.dry_run:
        raise ConfigError('[metrics] source = "nginx-log": a dry run sends no traffic through NGINX to log')
    log = settings.log
    if log is None:
        state = load_state(options.stack.run_dir)
        if state is None or state.nginx is None:
            raise ConfigError(
                f'[metrics] source = "nginx-log": no NGINX recorded in {options.stack.run_dir}; '
                "give [metrics] log = the path of your NGINX's JSON access log"
            )
        log = state.nginx.dir / "logs" / "access.jsonl"
    thresholds = JudgeSettings.from_mapping(options.toml.get("judge", {}), "canary.toml [judge]").p95_thresholds
    return NginxLogSource(
        log,
        {urlsplit(address).netloc: role for role, address in urls.items()},
        edges=(*DEFAULT_EDGES, *thresholds.values()),
        journey_route=settings.journey_route,
        default_group=settings.default_group,
    )

"""NginxLogSource on access-log lines written by the test (the format of the NGINX template), and the
``[metrics]`` settings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from canary_harness.errors import ConfigError, MetricsError, NoDataError
from canary_harness.metrics.nginx_log import NginxLogSource, attempts
from canary_harness.metrics.source_settings import MetricsSettings
from canary_harness.traffic.render import render_main

CANARY, PRODUCTION = "127.0.0.1:8001", "127.0.0.1:8000"
ROLES = {CANARY: "canary", PRODUCTION: "production"}
TEMPLATE = Path(__file__).resolve().parents[2] / "nginx" / "nginx.canary.conf"


def entry(
    addr: str, status: str, seconds: str, *, route: str = "/dna/create", group: str = "fast", **extra: Any
) -> str:
    line = {
        "route": route,
        "uri": route,
        "status": 200,
        "upstream_addr": addr,
        "upstream_status": status,
        "upstream_response_time": seconds,
        "group": group,
        "group_asked": "",
        "msec": 1000.0,
        "request_time": float(seconds.split(",")[-1]) if seconds.split(",")[-1].strip() != "-" else 0.0,
        "version": "v0.2.0" if addr.endswith(CANARY) else "v0.1.0",
        **extra,
    }
    return json.dumps(line) + "\n"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "access.jsonl"
    path.write_text(entry(CANARY, "200", "9.9"))  # written before the source: not counted
    return path


def append(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("".join(lines))


LATER = 1100.0  # a clock long past every logged request: every split unit is counted


def test_counts_requests_errors_journeys_and_latency_per_arm_and_group(log: Path) -> None:
    source = NginxLogSource(log, ROLES, edges=(0.5, 2.5), clock=lambda: LATER)
    append(
        log,
        entry(CANARY, "200", "0.300"),
        entry(CANARY, "500", "0.100", route="/evolve/options", group="creative"),
        entry(PRODUCTION, "200", "3.000"),
        entry(PRODUCTION, "200", "0.010", route="/health", group=""),  # a probe: not API traffic
        entry(PRODUCTION, "200", "0.200", route="/evolve/feedback", group=""),  # no group: no latency
    )
    read = source.snapshots(("canary", "production"))
    canary, production = read["canary"], read["production"]
    assert (canary.requests, canary.errors_5xx, canary.journeys, canary.version) == (2, 1, 1, "v0.2.0")
    assert canary.latency_buckets == {
        "fast": ((0.5, 1.0), (2.5, 1.0), (math.inf, 1.0)),
        "creative": ((0.5, 1.0), (2.5, 1.0), (math.inf, 1.0)),
    }
    assert (production.requests, production.errors_5xx, production.journeys) == (2, 0, 1)
    assert production.latency_buckets == {"fast": ((0.5, 0.0), (2.5, 0.0), (math.inf, 1.0))}
    assert production.latency_over("fast", 2.5) == 1


def test_a_failover_counts_the_canary_failure_the_user_never_saw(log: Path) -> None:
    source = NginxLogSource(log, ROLES, clock=lambda: LATER)
    append(log, entry(f"{CANARY}, {PRODUCTION}", "502, 200", "0.001, 0.250"))
    canary, production = source.snapshot("canary"), source.snapshot("production")
    assert (canary.requests, canary.errors_5xx) == (1, 1)
    assert (production.requests, production.errors_5xx, production.version) == (1, 0, "v0.1.0")
    assert canary.version is None  # the answer's version header came from production


def test_a_refused_attempt_without_status_is_a_502_and_unknown_addresses_are_skipped() -> None:
    tried = attempts(
        {"upstream_addr": f"{CANARY}, 10.0.0.9:80", "upstream_status": "-, 200", "upstream_response_time": "-, 0.1"},
        ROLES,
    )
    assert [(a.role, a.status, a.seconds) for a in tried] == [("canary", 502, None)]


def test_a_line_being_written_waits_and_bad_lines_are_counted_not_fatal(log: Path) -> None:
    source = NginxLogSource(log, ROLES)
    line = entry(CANARY, "200", "0.2")
    append(log, line[:20])
    assert source.snapshot("canary").requests == 0
    append(log, line[20:], "not json\n", "[1, 2]\n")
    assert source.snapshot("canary").requests == 1 and source.bad_lines == 2


def test_counters_are_cumulative_and_restart_on_a_rotated_log(log: Path) -> None:
    source = NginxLogSource(log, ROLES)
    append(log, entry(CANARY, "200", "0.2"), entry(CANARY, "200", "0.2"))
    assert source.snapshot("canary").requests == 2
    log.write_text("")  # rotated: a new, shorter file
    append(log, entry(CANARY, "200", "0.2"))
    assert source.snapshot("canary").requests == 3


def test_a_missing_log_is_no_data_and_an_unknown_arm_an_error(tmp_path: Path) -> None:
    source = NginxLogSource(tmp_path / "none.jsonl", ROLES)
    with pytest.raises(NoDataError, match="none.jsonl does not exist"):
        source.snapshot("canary")
    with pytest.raises(MetricsError, match="no upstream address for arm 'staging'"):
        source.snapshot("staging")


def test_the_template_logs_the_group_header_nginx_style() -> None:
    text = render_main(TEMPLATE.read_text(), listen_host="127.0.0.1", listen_port=18080, group_header="X-Tenant-Tier")
    assert '"group":"$upstream_http_x_tenant_tier","group_asked":"$http_x_tenant_tier"' in text
    with pytest.raises(Exception, match="group header 'X Tier'"):
        render_main(TEMPLATE.read_text(), listen_host="127.0.0.1", listen_port=18080, group_header="X Tier")


def test_metrics_settings() -> None:
    assert MetricsSettings.from_mapping({}, "t") == MetricsSettings()
    chosen = MetricsSettings.from_mapping({"source": "nginx-log", "journey_route": "", "log": "/var/log/a.jsonl"}, "t")
    assert (chosen.source, chosen.journey_route, str(chosen.log)) == ("nginx-log", None, "/var/log/a.jsonl")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "statsd"}, r"\[metrics\] source = 'statsd' \(canary.toml\): must be one of service, nginx-log"),
        ({"journey_route": "checkout"}, r"journey_route = 'checkout' \(canary.toml\): must be a path"),
        ({"log": 3}, r"\[metrics\] log = 3 \(canary.toml\)"),
        ({"sauce": 1}, r"unknown \[metrics\] key 'sauce' \(canary.toml\)"),
    ],
)
def test_bad_metrics_settings_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MetricsSettings.from_mapping(data, "canary.toml")


def test_split_units_are_counted_by_start_once_the_slowest_request_could_have_ended(log: Path) -> None:
    # The canary takes 3 s, production 0.1 s: both arms' requests started at 997-999.9, but the canary's
    # lines arrive 3 s late. Units are counted by start time, once 3 s + the margin have passed.
    now = [1000.0]
    source = NginxLogSource(log, ROLES, journey_route=None, clock=lambda: now[0])
    append(log, entry(PRODUCTION, "200", "0.1"), entry(CANARY, "200", "3.0"))
    assert (source.snapshot("canary").journeys, source.snapshot("production").journeys) == (0, 0)
    assert source.snapshot("canary").requests == 1  # requests and latency are counted at once
    now[0] = 1001.0  # production's request started at 999.9: 999.9 <= 1001 - 3 - 1? not yet
    assert source.snapshot("production").journeys == 0
    now[0] = 1004.0
    read = source.snapshots(("canary", "production"))
    assert (read["canary"].journeys, read["production"].journeys) == (1, 1)
    # Without a journey route the units are requests, and the split check's message says so.
    assert read["canary"].split_unit == "requests"
    assert NginxLogSource(log, ROLES, clock=lambda: now[0]).snapshot("canary").split_unit == "journeys"

"""Weighted routing through the real NGINX binary to real fragrance-ai processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from scipy.stats import binom

from canary_harness.errors import TrafficError
from canary_harness.stack import LocalStack
from canary_harness.traffic.nginx import NginxTrafficController, probe_split
from canary_harness.traffic.protocol import TrafficController
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import CANARY_VERSION, PRODUCTION_VERSION, StackFactory

pytest_plugins = ("tests.integration.stackfixtures",)
pytestmark = pytest.mark.integration


def binomial_interval(n: int, percent: int, confidence: float = 0.999) -> tuple[int, int]:
    """Central binomial interval for the canary count of ``n`` requests at ``percent`` %."""
    low, high = binom.interval(confidence, n, percent / 100)
    return int(low), int(high)


@dataclass
class LoadResult:
    """What a bounded background load saw.

    records: (start time, X-Upstream, status) per answered request. stale_closes: attempt ids that the
    server closed without any answer on a reused keep-alive connection (retried once on a fresh one).
    """

    records: list[tuple[float, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_closes: list[str] = field(default_factory=list)
    answered_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def completed(self) -> int:
        with self.lock:
            return len(self.records) + len(self.errors)


def run_load(
    url: str,
    clients: int,
    per_client: int,
    deadline_s: float,
    *,
    stop: threading.Event | None = None,
    fresh_connections: bool = False,
    retry_stale: bool = False,
) -> tuple[LoadResult, list[threading.Thread]]:
    """Start ``clients`` threads, each sending GETs until ``stop`` is set, ``per_client`` requests are
    sent or ``deadline_s`` has passed. Every attempt carries a unique ``?load=`` id for the access log.

    ``retry_stale``: like any HTTP/1.1 client (RFC 9112 9.3.1), retry a GET once when the server closed a
    persistent connection (FIN or reset) without sending a byte of response.
    """
    result = LoadResult()
    stop_at = time.monotonic() + deadline_s
    stop = stop or threading.Event()
    run = uuid.uuid4().hex[:12]
    headers = {"Connection": "close"} if fresh_connections else {}

    def client(index: int) -> None:
        with httpx.Client(timeout=10.0, headers=headers) as http:
            for i in range(per_client):
                if stop.is_set() or time.monotonic() > stop_at:
                    return
                started = time.monotonic()
                for attempt in range(2 if retry_stale else 1):
                    attempt_id = f"{run}-{index}-{i}-{attempt}"
                    try:
                        response = http.get(url, params={"load": attempt_id})
                    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                        # Closed (FIN or RST) before any response byte: checked against the access log.
                        with result.lock:
                            result.stale_closes.append(attempt_id)
                            if attempt == (1 if retry_stale else 0):
                                result.errors.append(f"{attempt_id}: {type(exc).__name__}: {exc}")
                        continue
                    except httpx.HTTPError as exc:
                        with result.lock:
                            result.errors.append(f"{attempt_id}: {type(exc).__name__}: {exc}")
                        break
                    with result.lock:
                        result.answered_ids.append(attempt_id)
                        result.records.append((started, response.headers.get("X-Upstream", ""), response.status_code))
                    break

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    return result, threads


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "load clients did not finish in time"


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ split
def test_controller_satisfies_the_protocol(canary_stack_at_zero: LocalStack) -> None:
    assert isinstance(canary_stack_at_zero.traffic(), TrafficController)


def test_zero_percent_sends_exactly_nothing_to_the_canary(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    assert traffic.canary_weight() == 0
    split = probe_split(traffic.base_url, 400, concurrency=4, fresh_connections=True)
    assert (split.canary, split.production, split.failures) == (0, 400, 0)
    assert split.by_version == {PRODUCTION_VERSION: 400}


def test_hundred_percent_sends_exactly_everything_to_the_canary(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    traffic.set_canary_weight(100, reason="test")
    assert traffic.canary_weight() == 100
    split = probe_split(traffic.base_url, 400, concurrency=4)
    assert (split.canary, split.production, split.failures) == (400, 0, 0)
    assert split.by_version == {CANARY_VERSION: 400}


def test_five_percent_of_2000_requests_is_in_the_binomial_interval(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    traffic.set_canary_weight(5, reason="test")
    assert traffic.canary_weight() == 5
    assert traffic.configured_weights().canary == 5
    split = probe_split(traffic.base_url, 2000, concurrency=4)
    low, high = binomial_interval(2000, 5)
    assert split.failures == 0 and split.ok == 2000
    assert low <= split.canary <= high, f"{split.canary} canary answers of 2000, expected {low}..{high}"
    # The header naming the upstream and the version that answered agree on every request.
    assert split.by_version == {CANARY_VERSION: split.canary, PRODUCTION_VERSION: split.production}


def test_status_endpoint_and_state_are_loopback_answers(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    status = httpx.get(traffic.base_url + "/nginx_status", timeout=5)
    assert status.status_code == 200 and "Active connections" in status.text
    in_force = traffic.weights_in_force()
    assert in_force.generation == traffic.configured_generation()
    assert (in_force.production, in_force.canary) == (traffic.production, traffic.canary)


# ------------------------------------------------------------------------------------------ reloads
@pytest.mark.parametrize("connections", ["fresh", "keep-alive"])
def test_reloads_under_concurrent_load_lose_no_request(canary_stack_at_zero: LocalStack, connections: str) -> None:
    """Eight reloads while four clients keep sending: every request is answered 200.

    Fresh connections: not one error. Keep-alive: a worker that shuts down closes its idle keep-alive
    connections, so a request sent at that instant meets a closed connection; NGINX never read it (it is
    not in the access log) and the client's one retry is answered. Nothing NGINX accepted is lost.
    """
    traffic = canary_stack_at_zero.traffic()
    stop = threading.Event()
    result, threads = run_load(
        traffic.base_url + "/health", clients=4, per_client=20_000, deadline_s=40, stop=stop,
        fresh_connections=connections == "fresh", retry_stale=connections == "keep-alive",
    )  # fmt: skip
    try:
        wait_until(lambda: result.completed() >= 200, 20, describe="the load to get going")
        for weight in (5, 25, 50, 75, 100, 25, 1, 0):
            traffic.set_canary_weight(weight, reason="reload under load")
            assert all(t.is_alive() for t in threads), "the load ended before every reload happened"
        settled = result.completed()
        wait_until(lambda: result.completed() >= settled + 200, 20, describe="traffic after the last reload")
    finally:
        stop.set()
        join_all(threads, 30)
    assert result.errors == []
    assert {status for _, _, status in result.records} == {200}
    assert {role for _, role, _ in result.records} == {"canary", "production"}, "reloads changed nothing"
    if connections == "fresh":
        assert result.stale_closes == []
    answered = set(result.answered_ids)

    def logged() -> dict[str, int]:
        return {
            str(e["uri"]).split("load=")[1]: int(str(e["status"]))
            for e in read_jsonl(traffic.access_log)
            if "load=" in str(e["uri"])
        }

    wait_until(lambda: answered <= set(logged()), 5, describe="every answered request in the access log")
    in_log = logged()
    assert set(in_log.values()) == {200}
    assert not set(result.stale_closes) & set(in_log), "NGINX read a request and closed without answering"
    assert traffic.canary_weight() == 0


def test_broken_template_leaves_the_previous_config_serving(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    traffic.set_canary_weight(25, reason="test")
    before = traffic.upstream_conf.read_bytes()
    generation = traffic.configured_generation()
    template = traffic.upstream_template.read_text()
    broken = {
        "nginx -t": template.replace("keepalive 32;", "keepalive thirty-two;"),
        "placeholder": template.replace("${CANARY_WEIGHT}", "${CANARY_WEIGTH}", 1),
    }
    try:
        for what, text in broken.items():
            traffic.upstream_template.write_text(text)
            with pytest.raises(TrafficError) as caught:
                traffic.set_canary_weight(75, reason=f"broken template ({what})")
            assert ("thirty-two" if what == "nginx -t" else "CANARY_WEIGTH") in str(caught.value)
            assert traffic.upstream_conf.read_bytes() == before
            assert traffic.canary_weight() == 25
            assert traffic.weights_in_force().generation == generation
            split = probe_split(traffic.base_url, 400, concurrency=4)
            low, high = binomial_interval(400, 25)
            assert split.failures == 0 and low <= split.canary <= high
    finally:
        traffic.upstream_template.write_text(template)


def test_reload_rejected_by_the_master_is_rolled_back(canary_stack_at_zero: LocalStack) -> None:
    """``nginx -t`` passes (it does not bind), but the running master cannot bind the new listener."""
    base = canary_stack_at_zero.traffic()
    traffic = NginxTrafficController(
        base.dir, listen_port=base.listen_port, production=base.production, canary=base.canary,
        reload_timeout=1.5,
    )  # fmt: skip
    template = traffic.upstream_template.read_text()
    before = traffic.upstream_conf.read_bytes()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        traffic.upstream_template.write_text(template + f"\nserver {{ listen 127.0.0.1:{port}; }}\n")
        try:
            with pytest.raises(TrafficError, match="previous configuration .* is back in force"):
                traffic.set_canary_weight(100, reason="reload that cannot bind")
        finally:
            traffic.upstream_template.write_text(template)
    assert traffic.upstream_conf.read_bytes() == before
    assert traffic.canary_weight() == 0
    split = probe_split(traffic.base_url, 200, concurrency=2)
    assert (split.canary, split.production) == (0, 200)


# ------------------------------------------------------------------------------------------ failover
def test_killing_the_canary_mid_traffic_keeps_answering_from_production(stack_factory: StackFactory) -> None:
    stack = stack_factory(canary_weight=50)
    traffic = stack.traffic()
    canary = stack.state().canary
    assert canary is not None and canary.pid is not None
    result, threads = run_load(traffic.base_url + "/health", clients=3, per_client=400, deadline_s=30)
    # No reload happens here: a keep-alive close would be a real failure, so nothing is retried.
    wait_until(lambda: result.completed() >= 150, 20, describe="traffic before the kill")
    killed_at = time.monotonic()
    os.kill(canary.pid, signal.SIGKILL)
    join_all(threads, 60)
    # A response the canary had begun (headers sent) when it was killed cannot be retried by NGINX:
    # at most the one request in flight per client may be cut; every answer is still a 200.
    assert len(result.errors) <= 3, result.errors
    assert all("peer closed connection" in error for error in result.errors), result.errors
    assert {status for _, _, status in result.records} == {200}
    before = [role for started, role, _ in result.records if started < killed_at]
    after = [role for started, role, _ in result.records if started > killed_at + 0.001]
    assert "canary" in before, "the canary served nothing before it was killed"
    assert len(after) >= 300 and set(after) == {"production"}
    # NGINX retried at least one request that met the dead canary on production.
    failovers = [
        entry
        for entry in read_jsonl(traffic.access_log)
        if str(entry["upstream_addr"]).startswith(traffic.canary + ", ")
    ]
    assert failovers and all(e["upstream"] == "production" and e["status"] == 200 for e in failovers)
    assert all(e["served_addr"] == traffic.production for e in failovers)


# ------------------------------------------------------------------------------------------ logs
def test_canary_access_log_holds_exactly_the_canarys_requests(canary_stack_at_zero: LocalStack) -> None:
    traffic = canary_stack_at_zero.traffic()
    traffic.set_canary_weight(30, reason="test")
    run = uuid.uuid4().hex
    seen: dict[str, str] = {}
    with httpx.Client(base_url=traffic.base_url, timeout=5) as client:
        for i in range(300):
            response = client.get(f"/health?probe={run}-{i}")
            assert response.status_code == 200
            role = response.headers["X-Upstream"]
            expected = CANARY_VERSION if role == "canary" else PRODUCTION_VERSION
            assert response.headers["X-Served-Version"] == expected
            served_by = traffic.canary if role == "canary" else traffic.production
            assert response.headers["X-Upstream-Addr"] == served_by
            seen[f"{run}-{i}"] = role
    canary_ids = {probe for probe, role in seen.items() if role == "canary"}
    assert 0 < len(canary_ids) < 300

    def ours(path: Path) -> list[dict[str, object]]:
        return [e for e in read_jsonl(path) if f"probe={run}-" in str(e["uri"])]

    # NGINX writes the log line as the request ends, possibly just after the client has its answer.
    wait_until(lambda: len(ours(traffic.access_log)) == 300, 5, describe="all 300 access-log lines")
    logged = ours(traffic.canary_access_log)
    assert {str(e["uri"]).split("probe=")[1] for e in logged} == canary_ids
    assert len(logged) == len(canary_ids)
    for entry in logged:
        assert entry["upstream"] == "canary" and entry["status"] == 200
        assert entry["version"] == CANARY_VERSION and entry["served_addr"] == traffic.canary
        assert entry["upstream_addr"] == traffic.canary
        assert isinstance(entry["request_time"], float)
        assert float(str(entry["upstream_response_time"])) >= 0
    everything = {str(e["uri"]).split("probe=")[1]: e["upstream"] for e in ours(traffic.access_log)}
    assert everything == seen

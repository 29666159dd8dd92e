"""Workers on a real broker: real redis-server, real API and worker processes.

Covers the rl worker applying queued feedback (its rl_update lines and metrics, not the API's), the async llm
path, queue isolation between releases, a restart that loses nothing, and the worker faults.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fa_helpers import SERVICE_ENV_VARS, RedisServer, ServiceProcess, free_port, metric_sum, wait_until

pytestmark = pytest.mark.timeout(120)

Launch = Callable[..., ServiceProcess]


def _stream(queue: str, role: str) -> str:
    return f"fragrance:{queue}:{role}"


def _state(client: redis.Redis, queue: str, role: str) -> dict[str, str]:
    raw: Any = client.hgetall(_stream(queue, role) + ":state")
    return {k.decode(): v.decode() for k, v in raw.items()}


def _feedbacks(api: ServiceProcess, count: int) -> list[dict[str, Any]]:
    """``count`` rated options through the API (one DNA, one experiment per feedback)."""
    with httpx.Client(base_url=api.base_url, timeout=10.0) as http:
        dna = http.post("/dna/create", json={"brief": "fresh citrus", "mode": "fast"}).json()
        answers = []
        for i in range(count):
            options = http.post(
                "/evolve/options", json={"dna_id": dna["dna_id"], "brief": "fresh citrus", "num_options": 2}
            ).json()
            reply = http.post(
                "/evolve/feedback",
                json={
                    "experiment_id": options["experiment_id"],
                    "chosen_id": options["options"][0]["id"],
                    "rating": 1 + i % 5,
                },
            )
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
        return answers


def _queue_jobs(url: str, queue: str, count: int, first: int = 0) -> None:
    """Queue ``count`` well-formed rl jobs straight into the stream, as the API would (deterministic, so two
    workers fed the same jobs can be compared)."""
    from fragrance_ai.dna import FEATURE_DIM

    client = redis.Redis.from_url(url)
    try:
        for i in range(first, first + count):
            fields = {
                "experiment_id": f"exp_{i}",
                "features": json.dumps([math.sin(i + k) for k in range(FEATURE_DIM)]),
                "action": str(i % 4),
                "logp": repr(math.log(0.25)),
                "reward": repr(((i % 5) - 2) / 2.0),
            }
            client.xadd(_stream(queue, "rl"), fields)  # type: ignore[arg-type]
    finally:
        client.close()


@pytest.mark.integration
def test_queued_feedback_is_applied_by_the_rl_worker(
    redis_server: RedisServer, service_factory: Launch, worker_factory: Launch
) -> None:
    env = {
        "FRAGRANCE_PPO_BATCH_SIZE": "4",
        "FRAGRANCE_REDIS_URL": redis_server.url,
        "FRAGRANCE_WORKERS": "rl",
    }
    api = service_factory(env=env).wait_ready()
    worker = worker_factory("rl", redis_server.url, env={"FRAGRANCE_PPO_BATCH_SIZE": "4"}).wait_ready()
    answers = _feedbacks(api, 8)
    assert all(a["status"] == "accepted" and a["update"] is None and a["queued"] for a in answers)
    updates = worker.wait_events("rl_update", 2, timeout=20)
    assert len(updates) == 2
    assert {u["component"] for u in updates} == {"worker-rl"} and {u["version"] for u in updates} == {
        "v0.2.0"
    }
    assert api.events("rl_update") == []  # the API queued, the worker learned
    text = worker.metrics_text()
    assert metric_sum(text, "rl_update_total", app_version="v0.2.0", component="worker-rl") == 2
    assert metric_sum(text, "worker_jobs_total", outcome="applied", component="worker-rl") == 8
    assert metric_sum(api.metrics_text(), "rl_update_total") == 0
    client = redis.Redis.from_url(redis_server.url)
    try:
        state = _state(client, "v0.2.0", "rl")
        assert state["applied"] == "8" and json.loads(state["policy"])["updates"] == 2
        assert client.xlen(_stream("v0.2.0", "rl")) == 0
    finally:
        client.close()


@pytest.mark.integration
def test_async_brief_is_served_by_the_llm_worker(
    redis_server: RedisServer, service_factory: Launch, worker_factory: Launch
) -> None:
    env = {"FRAGRANCE_REDIS_URL": redis_server.url, "FRAGRANCE_WORKERS": "llm"}
    api = service_factory(env=env).wait_ready()
    worker = worker_factory("llm", redis_server.url).wait_ready()
    with httpx.Client(base_url=api.base_url, timeout=10.0) as http:
        submitted = http.post("/dna/create?async=true", json={"brief": "warm amber", "mode": "balanced"})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]

        def done() -> dict[str, Any] | None:
            job = http.get(f"/jobs/{job_id}").json()
            return job if job["status"] != "queued" else None

        job = wait_until(done, timeout=20, what=f"job {job_id} to finish")
        assert job["status"] == "done", job
        dna_id = job["result"]["dna_id"]
        assert job["result"]["version"] == "v0.2.0"
        # The API keeps the worker's DNA: variations of it work.
        options = http.post(
            "/evolve/options", json={"dna_id": dna_id, "brief": "warm amber", "num_options": 2}
        )
        assert options.status_code == 200, options.text
        assert http.get("/jobs/job_unknown").status_code == 404
    assert len(worker.events("llm_brief")) == 1 and api.events("llm_brief") != []
    text = worker.metrics_text()
    assert metric_sum(text, "llm_brief_total", mode="balanced", component="worker-llm") == 1


@pytest.mark.integration
def test_a_canary_job_is_never_consumed_by_a_production_worker(
    redis_server: RedisServer, worker_factory: Launch
) -> None:
    batch = {"FRAGRANCE_PPO_BATCH_SIZE": "2"}
    production = worker_factory("rl", redis_server.url, version="v0.1.0", env=batch).wait_ready()
    _queue_jobs(redis_server.url, "v0.2.0", 10)  # the canary's queue; its worker is not running yet
    _queue_jobs(redis_server.url, "v0.1.0", 8)
    wait_until(
        lambda: metric_sum(production.metrics_text(), "worker_jobs_total", outcome="applied") == 8,
        timeout=20,
        what="the production worker to apply production's 8 jobs",
    )
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.xlen(_stream("v0.2.0", "rl")) == 10  # untouched by production
        canary = worker_factory("rl", redis_server.url, version="v0.2.0", env=batch).wait_ready()
        wait_until(
            lambda: _state(client, "v0.2.0", "rl").get("applied") == "10",
            timeout=20,
            what="the canary worker to apply the canary's 10 jobs",
        )
        assert metric_sum(canary.metrics_text(), "worker_jobs_total", outcome="applied") == 10
        assert metric_sum(production.metrics_text(), "worker_jobs_total", outcome="applied") == 8
        assert _state(client, "v0.1.0", "rl")["applied"] == "8"
    finally:
        client.close()


@pytest.mark.integration
def test_a_crashed_rl_worker_loses_nothing(redis_server: RedisServer, worker_factory: Launch) -> None:
    _queue_jobs(redis_server.url, "v0.2.0", 14)
    batch = {"FRAGRANCE_PPO_BATCH_SIZE": "4"}
    # Crashes after applying 6 jobs: one batch of 4 committed, 2 in its learner's buffer.
    crashing = worker_factory("rl", redis_server.url, env={**batch, "FRAGRANCE_FAULTS": "crash_after_jobs=6"})
    assert crashing.process.wait(30) == 70
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert _state(client, "v0.2.0", "rl")["applied"] == "4"
        replacement = worker_factory("rl", redis_server.url, env=batch).wait_ready()
        # 14 jobs = 3 full batches + 2 buffered: the replacement commits batches 2 and 3 (jobs 5..12).
        wait_until(
            lambda: _state(client, "v0.2.0", "rl").get("applied") == "12",
            timeout=20,
            what="12 applied jobs",
        )
        assert replacement.wait_events("policy_loaded", 1)[0]["updates"] == 1
        # The first worker had taken all 14 in one read (up to 64 at once): the 10 it had not committed.
        assert replacement.wait_events("orphans_claimed", 1)[0]["jobs"] == 10
        _queue_jobs(redis_server.url, "v0.2.0", 2, first=14)
        wait_until(
            lambda: _state(client, "v0.2.0", "rl").get("applied") == "16",
            timeout=20,
            what="all 16 jobs applied",
        )
        state = _state(client, "v0.2.0", "rl")
        assert "duplicates" not in state and "failed" not in state
        assert json.loads(state["policy"])["updates"] == 4
        assert client.xlen(_stream("v0.2.0", "rl")) == 0
        assert len(crashing.events("rl_update")) + len(replacement.events("rl_update")) == 4
    finally:
        client.close()


@pytest.mark.integration
def test_loss_factor_multiplies_the_rl_workers_loss(
    redis_server: RedisServer, worker_factory: Launch
) -> None:
    batch = {"FRAGRANCE_PPO_BATCH_SIZE": "4"}
    _queue_jobs(redis_server.url, "healthy", 8)
    _queue_jobs(redis_server.url, "faulty", 8)
    healthy = worker_factory("rl", redis_server.url, env=batch, args=["--queue", "healthy"])
    faulty = worker_factory(
        "rl", redis_server.url, env={**batch, "FRAGRANCE_FAULTS": "loss_factor=4"}, args=["--queue", "faulty"]
    )
    good = [e["loss"] for e in healthy.wait_events("rl_update", 2, timeout=20)]
    bad = [e["loss"] for e in faulty.wait_events("rl_update", 2, timeout=20)]
    assert all(g > 0 for g in good)
    assert bad == pytest.approx([4 * g for g in good], rel=1e-9)


@pytest.mark.integration
def test_a_stalled_worker_stays_healthy_and_leaves_the_queue_growing(
    redis_server: RedisServer, worker_factory: Launch
) -> None:
    worker = worker_factory(
        "rl", redis_server.url, env={"FRAGRANCE_FAULTS": "stall_after_jobs=3"}
    ).wait_ready()
    _queue_jobs(redis_server.url, "v0.2.0", 10)
    worker.wait_events("stall", 1, timeout=20)

    def backlog() -> bool:
        text = worker.metrics_text()
        return (
            metric_sum(text, "worker_queue_undelivered") + metric_sum(text, "worker_queue_pending") == 10
            and metric_sum(text, "worker_queue_pending") >= 3
        )

    wait_until(backlog, timeout=10, what="the queue gauges to show 10 jobs not committed")
    assert httpx.get(worker.base_url + "/health").status_code == 200
    assert worker.events("rl_update") == []


@pytest.mark.integration
def test_a_dead_broker_is_a_503_naming_it(service_factory: Launch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    api = service_factory(env={"FRAGRANCE_REDIS_URL": url, "FRAGRANCE_WORKERS": "rl,llm"}).wait_ready()
    reply = httpx.post(api.base_url + "/dna/create?async=true", json={"brief": "rose"}, timeout=10)
    assert reply.status_code == 503 and f"127.0.0.1:{url.split(':')[2]}" in reply.json()["detail"]


@pytest.mark.integration
def test_without_workers_async_is_refused(healthy_service: ServiceProcess) -> None:
    reply = httpx.post(
        healthy_service.base_url + "/dna/create?async=true", json={"brief": "rose"}, timeout=10
    )
    assert reply.status_code == 409 and "FRAGRANCE_WORKERS" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["worker", "rl"], {}, "--redis-url or FRAGRANCE_REDIS_URL"),
        (["worker", "rl", "--redis-url", "http://x"], {}, "--redis-url: 'http://x' is not a redis:// URL"),
        (["worker", "llm", "--redis-url", "redis://127.0.0.1:1", "--queue", "a b"], {}, "--queue: 'a b'"),
        ([], {"FRAGRANCE_WORKERS": "gpu", "FRAGRANCE_REDIS_URL": "redis://h"}, "unknown worker role 'gpu'"),
        ([], {"FRAGRANCE_WORKERS": "rl"}, "needs a broker: set FRAGRANCE_REDIS_URL"),
        ([], {"FRAGRANCE_FAULTS": "crash_after_jobs=1.5"}, "crash_after_jobs='1.5' is not a whole number"),
    ],
)
def test_bad_worker_settings_exit_2_naming_the_value(
    tmp_path: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    full_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV_VARS}
    full_env.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "fragrance_ai", *argv, "--port", "1"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr

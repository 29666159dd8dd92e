"""A worker: consumes one role's queue of one release (see queues.py) and serves /health and /metrics.

The rl worker applies queued feedback to its PPO learner (the ``rl_update`` log line and the ``rl_*`` metrics
come from it, labelled ``component="worker-rl"``) and commits each batch together with the policy, so a
restarted worker resumes the committed policy and replays the jobs of the batch it had not finished. The llm
worker reads queued briefs with the ensemble and stores each job's result for ``GET /jobs/{id}``.
Worker faults (FRAGRANCE_FAULTS): ``loss_factor``/``loss_nan`` on the learner, ``crash_after_s``,
``crash_after_jobs`` (exit 70) and ``stall_after_jobs`` (stops consuming, still answers /health).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from fragrance_ai import queues
from fragrance_ai.ensemble import AllProvidersFailed
from fragrance_ai.jsonlog import JsonLogger
from fragrance_ai.metrics import CONTENT_TYPE, ServiceMetrics
from fragrance_ai.producer import redacted
from fragrance_ai.service import FragranceService
from fragrance_ai.settings import Settings

CRASH_EXIT_CODE = 70
ORPHAN_CHECK_S = 2.0
BLOCK_MS = 500
RETRY_S = 0.5
OUTCOMES = ("applied", "failed", "duplicate")


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker consumes: its role, the broker, the queue key and how many llm jobs run at once."""

    role: str
    redis_url: str
    queue: str
    concurrency: int = 8

    @property
    def component(self) -> str:
        """The ``component`` label of its metrics and log lines."""
        return f"worker-{self.role}"


class WorkerMetrics(ServiceMetrics):
    """The service's families labelled with the component, plus the worker's own."""

    def __init__(self, version: str, component: str) -> None:
        super().__init__(version, component)
        names = ["outcome", "app_version", "component"]
        self.jobs = Counter(
            "worker_jobs", "Jobs taken off the queue, by outcome", names, registry=self.registry
        )
        for outcome in OUTCOMES:
            self.jobs.labels(outcome, *self.tail)
        self.undelivered = Gauge(
            "worker_queue_undelivered",
            "Jobs of this queue no worker has taken yet",
            ["app_version", "component"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "worker_queue_pending",
            "Jobs taken by a worker and not yet committed",
            ["app_version", "component"],
            registry=self.registry,
        )
        self.undelivered.labels(*self.tail)
        self.pending.labels(*self.tail)

    def count(self, outcome: str, n: int = 1) -> None:
        """``n`` jobs ended with ``outcome``."""
        self.jobs.labels(outcome, *self.tail).inc(n)


class Consumer:
    """The consuming loop shared by both roles; subclasses say how one job is handled."""

    def __init__(self, options: WorkerOptions, service: FragranceService, metrics: WorkerMetrics) -> None:
        self.options = options
        self.service = service
        self.metrics = metrics
        self.logger = service.logger
        self.faults = service.settings.faults
        self.stream = queues.stream_key(options.queue, options.role)
        self.state = queues.state_key(options.queue, options.role)
        self.prefix = queues.consumer_prefix(options.queue, options.role)
        self.name = queues.new_consumer_name(options.queue, options.role)
        self.client = queues.connect(options.redis_url, client_name=self.name)
        self.jobs = 0
        self.broker_ok = False
        self.stalled = False

    async def prepare(self) -> None:
        """Create the group (and, for rl, load the committed policy) before the first read."""
        await queues.ensure_group(self.client, self.stream)

    async def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        """Apply one job."""
        raise NotImplementedError

    def _after_job(self) -> None:
        self.jobs += 1
        crash = self.faults.crash_after_jobs
        if crash is not None and self.jobs >= crash:
            self.logger.emit(
                "crash", reason="crash_after_jobs fault", jobs=self.jobs, exit_code=CRASH_EXIT_CODE
            )
            os._exit(
                CRASH_EXIT_CODE
            )  # a crash: jobs taken and not committed stay pending for the next worker
        stall = self.faults.stall_after_jobs
        if stall is not None and self.jobs >= stall and not self.stalled:
            self.stalled = True
            self.logger.emit("stall", reason="stall_after_jobs fault", jobs=self.jobs)

    async def run(self) -> None:
        """Consume until cancelled; broker errors are logged and retried, never fatal."""
        last_orphan_check = -ORPHAN_CHECK_S
        while True:
            try:
                if not self.broker_ok:
                    await self.prepare()
                    self.broker_ok = True
                if self.stalled:
                    await asyncio.Event().wait()  # the stall fault: connected, healthy, consuming nothing
                jobs: list[tuple[str, dict[str, str]]] = []
                if time.monotonic() - last_orphan_check >= ORPHAN_CHECK_S:
                    last_orphan_check = time.monotonic()
                    jobs = await queues.claim_orphans(self.client, self.stream, self.name, self.prefix)
                    if jobs:
                        self.logger.emit("orphans_claimed", jobs=len(jobs), component=self.options.component)
                if not jobs:
                    jobs = await queues.read(
                        self.client, self.stream, self.name, count=self.read_count(), block_ms=BLOCK_MS
                    )
                for entry_id, fields in jobs:
                    await self.handle(entry_id, fields)
                    self._after_job()
                    if self.stalled:
                        break
            except RedisError as exc:
                if self.broker_ok:
                    self.logger.emit("broker_error", error=str(exc), broker=redacted(self.options.redis_url))
                self.broker_ok = False
                await asyncio.sleep(RETRY_S)

    def read_count(self) -> int:
        """How many jobs to ask for at once."""
        return 64

    async def watch_queue(self) -> None:
        """Keep the queue gauges current (a separate loop: a stalled consumer must not freeze them)."""
        while True:
            try:
                undelivered, pending = await queues.backlog(self.client, self.stream)
                self.metrics.undelivered.labels(*self.metrics.tail).set(undelivered)
                self.metrics.pending.labels(*self.metrics.tail).set(pending)
            except RedisError:
                pass  # reported by the consuming loop
            await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        """Drop the broker connections: the worker no longer counts as a consumer."""
        await self.client.aclose()


class RlConsumer(Consumer):
    """Applies queued feedback; acknowledges a batch only with the PPO update it went into."""

    def __init__(self, options: WorkerOptions, service: FragranceService, metrics: WorkerMetrics) -> None:
        super().__init__(options, service, metrics)
        self.batch_ids: list[str] = []

    async def prepare(self) -> None:
        await super().prepare()
        saved = await self.client.hget(self.state, "policy")
        if saved and not self.batch_ids:
            policy = json.loads(saved)
            learner = self.service.learner
            learner.policy.theta = np.asarray(policy["theta"], dtype=float)
            learner.policy.w = np.asarray(policy["w"], dtype=float)
            learner.updates = int(policy["updates"])
            self.logger.emit("policy_loaded", updates=learner.updates, component=self.options.component)

    async def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            x = np.asarray(json.loads(fields["features"]), dtype=float)
            action, logp, reward = int(fields["action"]), float(fields["logp"]), float(fields["reward"])
        except (KeyError, ValueError, TypeError) as exc:
            await queues.count_failed(self.client, self.state, [entry_id], self.stream)
            self.metrics.count("failed")
            self.logger.emit("job_failed", id=entry_id, error=f"malformed rl job: {exc!r}")
            return
        self.batch_ids.append(entry_id)
        update = self.service.apply_transition(x, action, logp, reward)
        if update is None:
            return
        learner = self.service.learner
        policy = {
            "theta": learner.policy.theta.tolist(),
            "w": learner.policy.w.tolist(),
            "updates": learner.updates,
        }
        ids, self.batch_ids = self.batch_ids, []
        acked = await queues.commit(
            self.client, stream=self.stream, state=self.state, ids=ids, fields={"policy": json.dumps(policy)}
        )
        self.metrics.count("applied", acked)
        if acked < len(ids):
            self.metrics.count("duplicate", len(ids) - acked)
            self.logger.emit("duplicate_jobs", jobs=len(ids) - acked, component=self.options.component)


class LlmConsumer(Consumer):
    """Reads queued briefs with the ensemble, up to ``concurrency`` at once; stores each job's result."""

    def __init__(self, options: WorkerOptions, service: FragranceService, metrics: WorkerMetrics) -> None:
        super().__init__(options, service, metrics)
        self.slots = asyncio.Semaphore(options.concurrency)
        self.running: set[asyncio.Task[None]] = set()

    def read_count(self) -> int:
        return max(1, min(self.options.concurrency, 64))

    async def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        await self.slots.acquire()
        task = asyncio.create_task(self._job(entry_id, fields))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _job(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            job_id = fields.get("job_id", "")
            target = queues.job_key(self.options.queue, job_id)
            try:
                result = await self.service.create_dna(fields["brief"], fields.get("mode", "fast"))
                done = {"status": "done", "result": json.dumps(result), "finished": repr(time.time())}
                outcome = "applied"
            except (AllProvidersFailed, KeyError) as exc:
                done = {"status": "failed", "error": str(exc), "finished": repr(time.time())}
                outcome = "failed"
            acked = await queues.commit(
                self.client,
                stream=self.stream,
                state=self.state,
                ids=[entry_id],
                target=target,
                fields=done,
                ttl_s=queues.JOB_TTL_S,
            )
            self.metrics.count(outcome if acked else "duplicate")
        except RedisError as exc:
            # Not committed: the job stays pending and is redone by whoever claims it.
            self.logger.emit("broker_error", error=str(exc), job=entry_id)
        finally:
            self.slots.release()


def create_worker_app(
    settings: Settings, options: WorkerOptions, *, started_at: float | None = None
) -> FastAPI:
    """The worker as an ASGI app: its lifespan runs the consuming loop; its routes: /health, /metrics."""
    logger = JsonLogger(settings.version, log_file=settings.log_file)
    metrics = WorkerMetrics(settings.version, options.component)
    service = FragranceService(settings, logger=logger, metrics=metrics)
    consumer: Consumer = (RlConsumer if options.role == "rl" else LlmConsumer)(options, service, metrics)
    began = time.monotonic() if started_at is None else started_at
    tasks: list[asyncio.Task[None]] = []

    async def crash_later(after: float) -> None:
        await asyncio.sleep(max(began + after - time.monotonic(), 0.0))
        logger.emit("crash", reason="crash_after_s fault", after_s=after, exit_code=CRASH_EXIT_CODE)
        os._exit(CRASH_EXIT_CODE)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.emit(
            "startup",
            component=options.component,
            role=options.role,
            queue=options.queue,
            consumer=consumer.name,
            broker=redacted(options.redis_url),
            host=settings.host,
            port=settings.port,
            pid=os.getpid(),
            seed=settings.seed,
            faults=dict(settings.faults.given),
        )
        tasks.append(asyncio.create_task(consumer.run()))
        tasks.append(asyncio.create_task(consumer.watch_queue()))
        if settings.faults.crash_after_s is not None:
            tasks.append(asyncio.create_task(crash_later(settings.faults.crash_after_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.aclose()
            await service.aclose()
            logger.emit("shutdown", component=options.component, jobs=consumer.jobs)
            logger.close()

    app = FastAPI(title=f"fragrance-ai {options.component}", version=settings.version, lifespan=lifespan)

    @app.get("/health")
    async def health() -> JSONResponse:
        """Healthy while the consuming loop runs and the broker answers."""
        alive = bool(tasks) and not tasks[0].done()
        body: dict[str, Any] = {
            "status": "healthy" if alive and consumer.broker_ok else "unhealthy",
            "version": settings.version,
            "component": options.component,
            "queue": options.queue,
            "consumer": consumer.name,
            "jobs": consumer.jobs,
        }
        return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition."""
        return Response(content=metrics.render(), media_type=CONTENT_TYPE)

    return app

"""The HTTP API (FastAPI): routes, error mapping, fault injection and the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import IO, Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from fragrance_ai.bodylimit import BodyLimitMiddleware
from fragrance_ai.ensemble import AllProvidersFailed
from fragrance_ai.errors import BrokerError, NotFoundError
from fragrance_ai.jsonlog import JsonLogger
from fragrance_ai.metrics import CONTENT_TYPE, ServiceMetrics
from fragrance_ai.middleware import TelemetryMiddleware
from fragrance_ai.models import CreateDnaRequest, EvolveOptionsRequest, FeedbackRequest
from fragrance_ai.providers import Provider
from fragrance_ai.service import FragranceService, new_id
from fragrance_ai.settings import Settings

CRASH_EXIT_CODE = 70


class InjectedFault(Exception):
    """Raised by a route when the error_rate fault picks this request."""


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _without_input(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without the offending input: a 422 must never echo a request back (it may be
    megabytes long, or hold what the client should not see repeated)."""
    return [
        {key: value for key, value in dict(error).items() if key not in ("input", "ctx", "url")}
        for error in errors
    ]


def startup_fields(settings: Settings) -> dict[str, Any]:
    """What the startup log line announces (never secrets)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "pid": os.getpid(),
        "seed": settings.seed,
        "models": list(settings.active_models),
        "use_ensemble": settings.use_ensemble,
        "latency_scale": settings.latency_scale,
        "ppo_batch_size": settings.ppo_batch_size,
        "store_size": settings.store_size,
        "max_body_bytes": settings.max_body_bytes,
        "faults": dict(settings.faults.given),
        "workers": list(settings.workers),
        "queue": settings.queue if settings.workers else None,
    }


async def _crash_later(logger: JsonLogger, delay_s: float, after_s: float) -> None:
    await asyncio.sleep(max(delay_s, 0.0))
    logger.emit("crash", reason="crash_after_s fault", after_s=after_s, exit_code=CRASH_EXIT_CODE)
    os._exit(CRASH_EXIT_CODE)  # a crash, not a shutdown: no cleanup, like a real fatal error


def create_app(
    settings: Settings,
    *,
    providers: Sequence[Provider] | None = None,
    stream: IO[str] | None = None,
    started_at: float | None = None,
) -> FastAPI:
    """Build the app; raises SettingsError (e.g. a provider missing its URL) before anything listens."""
    logger = JsonLogger(settings.version, log_file=settings.log_file, stream=stream)
    metrics = ServiceMetrics(settings.version)
    service = FragranceService(settings, logger=logger, metrics=metrics, providers=providers)
    began = time.monotonic() if started_at is None else started_at
    producer = None
    if settings.workers:
        # Imported only with workers: without them the API needs no broker client at all.
        from fragrance_ai.producer import Producer

        producer = Producer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.emit("startup", **startup_fields(settings))
        crash: asyncio.Task[None] | None = None
        after = settings.faults.crash_after_s
        if after is not None:
            crash = asyncio.create_task(_crash_later(logger, began + after - time.monotonic(), after))
        try:
            yield
        finally:
            if crash is not None:
                crash.cancel()
            await service.aclose()
            if producer is not None:
                await producer.aclose()
            logger.emit("shutdown")
            logger.close()

    app = FastAPI(title="fragrance-ai", version=settings.version, lifespan=lifespan)
    # Routes return JSONResponse directly: the payloads are plain JSON types already, and skipping
    # FastAPI's generic encoder roughly halves the per-request cost of the nested DNA documents.
    app.state.service = service
    app.add_middleware(TelemetryMiddleware, version=settings.version, metrics=metrics, logger=logger)
    # Added last, so it runs first: an oversized body is refused before anything reads it (counted as 413).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "detail": jsonable_encoder(_without_input(exc.errors())),
                "message": _validation_message(exc),
            },
        )

    @app.exception_handler(NotFoundError)
    async def on_not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(AllProvidersFailed)
    async def on_llm_down(_request: Request, exc: AllProvidersFailed) -> JSONResponse:
        return JSONResponse(status_code=502, content={"detail": str(exc)})

    @app.exception_handler(BrokerError)
    async def on_broker_down(_request: Request, exc: BrokerError) -> JSONResponse:
        logger.emit("broker_error", error=str(exc))
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(InjectedFault)
    async def on_injected(_request: Request, _exc: InjectedFault) -> JSONResponse:
        return JSONResponse(
            status_code=500, content={"detail": "internal error (injected fault: error_rate)"}
        )

    def maybe_fail() -> None:
        if service.injector.fail_request():
            raise InjectedFault()

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness and the running version."""
        return {"status": "healthy", "version": settings.version}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition."""
        return Response(content=metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/dna/create")
    async def create_dna(
        body: CreateDnaRequest,
        request: Request,
        run_async: bool = Query(False, alias="async", description="queue the brief for the llm worker"),
    ) -> JSONResponse:
        """A fragrance DNA from a brief read by the LLM ensemble (with ``?async=true``: a job id to poll)."""
        request.state.mode = body.mode
        maybe_fail()
        if not run_async:
            return JSONResponse(await service.create_dna(body.brief, body.mode))
        if producer is None or "llm" not in settings.workers:
            return JSONResponse(
                status_code=409,
                content={
                    "detail": "async=true needs an llm worker (FRAGRANCE_WORKERS=llm, FRAGRANCE_REDIS_URL)"
                },
            )
        job_id = new_id("job")
        await producer.submit_brief(job_id, body.brief, body.mode)
        return JSONResponse(status_code=202, content={"job_id": job_id, "status": "queued"})

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> JSONResponse:
        """The status of an async job (queued, done with its result, failed with its error)."""
        job = await producer.job(job_id) if producer is not None else None
        if job is None:
            raise NotFoundError(f"unknown job_id {job_id!r}")
        result = job.get("result")
        if isinstance(result, dict) and "dna_id" in result and "notes" in result:
            # The worker made the DNA: keep it here too, so /evolve/options can build on it.
            service.dnas.put(result["dna_id"], result["notes"])
        return JSONResponse(job)

    @app.post("/evolve/options")
    async def evolve_options(body: EvolveOptionsRequest, request: Request) -> JSONResponse:
        """Variations of a DNA proposed by the PPO policy."""
        request.state.mode = body.mode
        maybe_fail()
        return JSONResponse(
            await service.evolve_options(body.dna_id, body.brief, body.mode, body.num_options)
        )

    @app.post("/evolve/feedback")
    async def evolve_feedback(body: FeedbackRequest) -> JSONResponse:
        """A rating of one option; runs a PPO update when the batch is full."""
        maybe_fail()
        if producer is not None and "rl" in settings.workers:
            fields = service.transition_for(body.experiment_id, body.chosen_id, body.rating)
            entry = await producer.queue_feedback(fields)
            return JSONResponse(
                {"status": "accepted", "experiment_id": body.experiment_id, "update": None, "queued": entry}
            )
        return JSONResponse(service.feedback(body.experiment_id, body.chosen_id, body.rating))

    return app

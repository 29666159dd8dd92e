"""The API's side of the workers: feedback to the rl worker, async briefs to the llm worker, job status."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from fragrance_ai import queues
from fragrance_ai.errors import BrokerError
from fragrance_ai.settings import Settings

T = TypeVar("T")


def redacted(url: str) -> str:
    """The broker URL without its password (it ends up in error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"***@{host}{port}").geturl()


class Producer:
    """Queues work for this release's workers (queue key = FRAGRANCE_QUEUE_KEY, else the version)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url
        self.queue = settings.queue
        self.roles = settings.workers
        self.client = queues.connect(self.url, client_name=f"api:{self.queue}")
        self._ready: set[str] = set()

    async def _call(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        try:
            return await action()
        except RedisError as exc:
            raise BrokerError(f"broker {redacted(self.url)}: {what} failed: {exc}") from exc

    async def _stream(self, role: str) -> str:
        stream = queues.stream_key(self.queue, role)
        if stream not in self._ready:
            await self._call(f"creating {stream}", lambda: queues.ensure_group(self.client, stream))
            self._ready.add(stream)
        return stream

    async def queue_feedback(self, fields: Mapping[str, str]) -> str:
        """Queue one rated transition for the rl worker; returns its stream id."""
        stream = await self._stream("rl")
        return await self._call(f"XADD {stream}", lambda: queues.enqueue(self.client, stream, fields))

    async def submit_brief(self, job_id: str, brief: str, mode: str) -> None:
        """Record job ``job_id`` as queued and queue the brief for the llm worker."""
        stream = await self._stream("llm")
        key = queues.job_key(self.queue, job_id)

        async def submit() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"status": "queued", "mode": mode, "submitted": repr(time.time())})
                pipe.expire(key, queues.JOB_TTL_S)
                pipe.xadd(stream, {"job_id": job_id, "brief": brief, "mode": mode})
                await pipe.execute()

        await self._call(f"queueing job {job_id}", submit)

    async def job(self, job_id: str) -> dict[str, Any] | None:
        """The job's status (and result or error), or None for an unknown or expired job."""
        key = queues.job_key(self.queue, job_id)
        fields: dict[str, str] = await self._call(f"HGETALL {key}", lambda: self.client.hgetall(key))  # type: ignore[arg-type,return-value]
        if not fields:
            return None
        answer: dict[str, Any] = {"job_id": job_id, "status": fields.get("status", "queued")}
        if "result" in fields:
            answer["result"] = json.loads(fields["result"])
        if "error" in fields:
            answer["error"] = fields["error"]
        return answer

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

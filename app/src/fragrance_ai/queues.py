"""The broker of the workers: one Redis stream per release queue and role, read through a consumer group.

Keys (``{queue}`` is FRAGRANCE_QUEUE_KEY, by default the release version, so a canary's work never reaches a
production worker and the other way round)::

    fragrance:{queue}:{role}           the stream of jobs (XADD by the API)
    fragrance:{queue}:{role}:state     hash: applied / duplicates / failed counters, the rl worker's policy
    fragrance:{queue}:job:{id}         one async LLM job (status, result or error), expires after a day

Delivery is at-least-once with an exactly-once commit: a worker reads jobs with XREADGROUP under its own
consumer name (also its Redis client name), and acknowledges them only when their effect is committed --
the rl worker when the PPO update of the batch they belong to is done, together with the new policy; the
llm worker with the job's result -- in one Lua script (XACK + XDEL + counters + state). A worker that dies
leaves its jobs pending; any worker of the same queue and role claims the jobs of consumers whose client
is gone (``claim_orphans``). A job acknowledged twice (claimed by two workers) counts as a duplicate, not
as applied.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

GROUP = "workers"
PREFIX = "fragrance"
JOB_TTL_S = 86_400
CLIENT_PREFIX = "fw"

# KEYS: stream, counters hash, target hash
# ARGV: group, n, id_1..id_n, ttl of the target (0: none), field, value, ...
_COMMIT_LUA = """
local n = tonumber(ARGV[2])
local ids = {}
for i = 1, n do ids[i] = ARGV[2 + i] end
local acked = 0
if n > 0 then
  acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
redis.call('HINCRBY', KEYS[2], 'applied', acked)
if acked < n then redis.call('HINCRBY', KEYS[2], 'duplicates', n - acked) end
local ttl = tonumber(ARGV[3 + n])
for i = 4 + n, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
return acked
"""


def stream_key(queue: str, role: str) -> str:
    """The stream of one queue and role."""
    return f"{PREFIX}:{queue}:{role}"


def state_key(queue: str, role: str) -> str:
    """The counters (and rl policy) of one queue and role."""
    return f"{stream_key(queue, role)}:state"


def job_key(queue: str, job_id: str) -> str:
    """The hash of one async LLM job."""
    return f"{PREFIX}:{queue}:job:{job_id}"


def consumer_prefix(queue: str, role: str) -> str:
    """The start of every consumer (and Redis client) name of one queue and role's workers."""
    return f"{CLIENT_PREFIX}:{queue}:{role}:"


def new_consumer_name(queue: str, role: str) -> str:
    """A fresh consumer name: unique per process (a restarted worker never inherits a dead one's identity)."""
    return f"{consumer_prefix(queue, role)}{os.getpid()}-{secrets.token_hex(3)}"


def connect(url: str, *, client_name: str | None = None) -> aioredis.Redis:
    """An asyncio client (strings, not bytes); every pooled connection carries ``client_name``."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, decode_responses=True, client_name=client_name, socket_connect_timeout=2.0
    )
    return client


async def ensure_group(client: aioredis.Redis, stream: str) -> None:
    """Create the stream and its consumer group from the first entry (jobs queued before any worker count)."""
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def enqueue(client: aioredis.Redis, stream: str, fields: Mapping[str, str]) -> str:
    """Append one job; returns its stream id."""
    entry_id: Any = await client.xadd(stream, dict(fields))  # type: ignore[arg-type]
    return str(entry_id)


async def live_clients(client: aioredis.Redis, prefix: str) -> set[str]:
    """Names of the connected Redis clients starting with ``prefix`` (the workers consuming a queue)."""
    return {c["name"] for c in await client.client_list() if c.get("name", "").startswith(prefix)}


async def claim_orphans(
    client: aioredis.Redis, stream: str, me: str, prefix: str
) -> list[tuple[str, dict[str, str]]]:
    """Take over the pending jobs of consumers whose client is gone (dead workers), oldest first."""
    live = await live_clients(client, prefix)
    claimed: list[tuple[str, dict[str, str]]] = []
    for consumer in await client.xinfo_consumers(stream, GROUP):
        name = str(consumer["name"])
        if name == me or name in live:
            continue
        if int(consumer.get("pending", 0)) > 0:
            pending: Any = await client.xpending_range(
                stream, GROUP, min="-", max="+", count=int(consumer["pending"]), consumername=name
            )
            ids = [p["message_id"] for p in pending]
            if ids:
                taken: Any = await client.xclaim(stream, GROUP, me, min_idle_time=0, message_ids=ids)
                for entry_id, fields in taken:
                    if fields:  # None: the entry was deleted meanwhile (committed by someone)
                        claimed.append((entry_id, fields))
        # Only once its jobs are ours: deleting a consumer drops its pending entries.
        await client.xgroup_delconsumer(stream, GROUP, name)
    claimed.sort(key=lambda item: tuple(int(part) for part in item[0].split("-")))
    return claimed


async def read(
    client: aioredis.Redis, stream: str, me: str, *, count: int, block_ms: int
) -> list[tuple[str, dict[str, str]]]:
    """New jobs for consumer ``me`` (waits up to ``block_ms``)."""
    reply: Any = await client.xreadgroup(GROUP, me, {stream: ">"}, count=count, block=block_ms)
    jobs: list[tuple[str, dict[str, str]]] = []
    for _stream, entries in reply or []:
        jobs.extend((entry_id, fields) for entry_id, fields in entries)
    return jobs


async def commit(
    client: aioredis.Redis,
    *,
    stream: str,
    state: str,
    ids: Sequence[str],
    target: str | None = None,
    fields: Mapping[str, str] | None = None,
    ttl_s: int = 0,
) -> int:
    """Acknowledge ``ids`` and write ``fields`` to ``target`` (default: the state hash) atomically; returns
    how many were acknowledged now (fewer than ``len(ids)``: duplicates, counted)."""
    argv: list[Any] = [GROUP, len(ids), *ids, ttl_s]
    for key, value in (fields or {}).items():
        argv += [key, value]
    acked = await client.eval(_COMMIT_LUA, 3, stream, state, target or state, *argv)
    return int(acked)


async def count_failed(client: aioredis.Redis, state: str, ids: Sequence[str], stream: str) -> None:
    """Acknowledge jobs that cannot be applied (malformed), counting them as failed: reported, not retried."""
    if ids:
        await client.xack(stream, GROUP, *ids)
        await client.xdel(stream, *ids)
        await client.hincrby(state, "failed", len(ids))


async def backlog(client: aioredis.Redis, stream: str) -> tuple[int, int]:
    """(jobs not yet delivered, jobs delivered but not committed) of the group."""
    # Committed jobs are deleted from the stream, so its length is exactly undelivered + pending (the group's
    # own "lag" is unreliable once entries are deleted).
    length = int(await client.xlen(stream))
    for group in await client.xinfo_groups(stream):
        if group["name"] == GROUP:
            pending = int(group.get("pending", 0))
            return max(length - pending, 0), pending
    return length, 0


def dumps(value: Any) -> str:
    """Compact JSON for a stream field."""
    return json.dumps(value, separators=(",", ":"))

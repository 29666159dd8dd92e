"""Helpers shared by the fragrance-ai tests: free ports, polling with a deadline, service processes,
metrics parsing, concurrent requests and exact binomial intervals."""

from __future__ import annotations

import http.client
import json
import math
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

# Variables of the service that a developer's shell might have set: tests start from a clean slate.
SERVICE_ENV_VARS = (
    "APP_VERSION",
    "LLM_ENSEMBLE_MODELS",
    "LLM_ENSEMBLE_WEIGHTS",
    "USE_LLM_ENSEMBLE",
    "FRAGRANCE_FAULTS",
    "FRAGRANCE_LATENCY_SCALE",
    "FRAGRANCE_PPO_BATCH_SIZE",
    "FRAGRANCE_SEED",
    "FRAGRANCE_STORE_SIZE",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "FRAGRANCE_LLM_TIMEOUT_S",
    "FRAGRANCE_LLM_RETRIES",
    "FRAGRANCE_REDIS_URL",
    "FRAGRANCE_WORKERS",
    "FRAGRANCE_QUEUE_KEY",
)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns a truthy value; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ServiceProcess:
    """A ``fragrance-ai`` subprocess with its log file and captured stdout/stderr."""

    process: subprocess.Popen[bytes]
    port: int
    version: str | None
    log_file: Path
    stdout_file: Path
    stderr_file: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"fragrance-ai exited with {self.process.returncode} before answering /health:\n"
                f"{self.stderr_file.read_text()[-2000:]}"
            )
        try:
            return httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 20.0) -> ServiceProcess:
        """Poll /health until it answers 200 (fails fast if the process died)."""
        wait_until(self._healthy, timeout=timeout, what=f"{self.base_url}/health")
        return self

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The JSON events written to the log file so far, optionally of one kind."""
        if not self.log_file.exists():
            return []
        found = []
        for line in self.log_file.read_text().splitlines():
            record = json.loads(line)
            if kind is None or record.get("event") == kind:
                found.append(record)
        return found

    def wait_events(self, kind: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Poll the log file until it holds at least ``count`` events of ``kind``; returns them all."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            found[:] = self.events(kind)
            return len(found) >= count

        wait_until(enough, timeout=timeout, what=f"{count} {kind!r} events in {self.log_file}")
        return found

    def metrics_text(self) -> str:
        """GET /metrics."""
        response = httpx.get(self.base_url + "/metrics", timeout=5.0)
        response.raise_for_status()
        return response.text

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM by PID, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


def launch_service(
    directory: Path,
    *,
    env: Mapping[str, str] | None = None,
    version: str | None = "v0.2.0",
    args: Iterable[str] = (),
    name: str = "svc",
) -> ServiceProcess:
    """Start ``fragrance-ai`` on a free port at latency scale 0 (unless ``env`` says otherwise);
    returns at once: call ``wait_ready()``."""
    full_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV_VARS}
    full_env["FRAGRANCE_LATENCY_SCALE"] = "0"
    full_env.update(env or {})
    port = free_port()
    log_file = directory / f"{name}.jsonl"
    stdout_file, stderr_file = directory / f"{name}.out", directory / f"{name}.err"
    command = [sys.executable, "-m", "fragrance_ai", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-file", str(log_file), *args]
    if version is not None:  # None: no --version flag (APP_VERSION or the default applies)
        command += ["--version", version]
    with stdout_file.open("wb") as out, stderr_file.open("wb") as err:
        process = subprocess.Popen(command, env=full_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    return ServiceProcess(process, port, version, log_file, stdout_file, stderr_file)


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Samples called ``name`` whose labels include ``labels``."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found.append((dict(sample.labels), float(sample.value)))
    return found


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the matching samples (0 when none)."""
    return sum(value for _, value in samples(text, name, **labels))


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """Central interval [lo, hi] holding a Binomial(n, p) count with at least ``confidence``."""
    tail = (1.0 - confidence) / 2.0
    log_pmf = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
        for k in range(n + 1)
    ]
    pmf = [math.exp(v) for v in log_pmf]
    cumulative, lo = 0.0, 0
    for k, mass in enumerate(pmf):
        if cumulative + mass > tail:
            lo = k
            break
        cumulative += mass
    cumulative, hi = 0.0, n
    for k in range(n, -1, -1):
        if cumulative + pmf[k] > tail:
            hi = k
            break
        cumulative += pmf[k]
    return lo, hi


Call = tuple[str, str, Mapping[str, Any] | None]  # method, path, JSON body


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as the tests read it (a subset of httpx.Response's interface)."""

    status_code: int
    headers: Mapping[str, str]  # lower-case names
    text: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)


def fire(
    base_url: str, calls: Sequence[Call], *, concurrency: int = 16, timeout: float = 30.0
) -> list[Reply]:
    """Send ``calls`` over ``concurrency`` keep-alive connections (one thread each); replies in call order.

    Plain http.client in threads: several times the request rate of an in-process async client, so the
    service, not the test, is what gets measured.
    """
    parsed = urlsplit(base_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    results: list[Reply | None] = [None] * len(calls)
    pending = queue.SimpleQueue[int]()
    for index in range(len(calls)):
        pending.put(index)
    failures: list[BaseException] = []

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while True:
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                method, path, body = calls[index]
                payload = json.dumps(body).encode() if body is not None else None
                headers = {"content-type": "application/json"} if payload is not None else {}
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                text = response.read().decode()
                results[index] = Reply(
                    response.status, {k.lower(): v for k, v in response.getheaders()}, text
                )
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(concurrency, len(calls)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    if failures:
        raise AssertionError(f"{len(failures)} request(s) failed, first: {failures[0]!r}")
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise AssertionError(f"{len(missing)} request(s) got no answer in time")
    return [r for r in results if r is not None]


@dataclass
class RedisServer:
    """A ``redis-server`` subprocess on loopback with its own data directory (no persistence)."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> int:
        """SIGTERM by PID (SIGKILL after 10 s); returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


def launch_redis(directory: Path) -> RedisServer:
    """Start redis-server on a free loopback port and wait until it answers PING."""
    import redis

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]
    command += [
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        str(directory / "redis.log"),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    server = RedisServer(process, port, directory)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited with {process.returncode}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout=10.0, what=f"redis-server on port {port}")
    except BaseException:
        server.stop()
        raise
    finally:
        client.close()
    return server


def launch_worker(
    directory: Path,
    role: str,
    redis_url: str,
    *,
    env: Mapping[str, str] | None = None,
    version: str = "v0.2.0",
    args: Iterable[str] = (),
    name: str = "worker",
) -> ServiceProcess:
    """Start ``fragrance-ai worker ROLE`` on a free port, latency scale 0 (returns at once: wait_ready())."""
    full_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV_VARS}
    full_env["FRAGRANCE_LATENCY_SCALE"] = "0"
    full_env.update(env or {})
    port = free_port()
    log_file = directory / f"{name}.jsonl"
    stdout_file, stderr_file = directory / f"{name}.out", directory / f"{name}.err"
    command = [sys.executable, "-m", "fragrance_ai", "worker", role, "--port", str(port)]
    command += ["--redis-url", redis_url, "--version", version, "--log-file", str(log_file), *args]
    with stdout_file.open("wb") as out, stderr_file.open("wb") as err:
        process = subprocess.Popen(command, env=full_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    return ServiceProcess(process, port, version, log_file, stdout_file, stderr_file, extra={"role": role})

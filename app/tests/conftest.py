"""Fixtures of the fragrance-ai tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fa_helpers import RedisServer, ServiceProcess, launch_redis, launch_service, launch_worker


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts ``fragrance-ai`` subprocesses (not yet waited for: call ``.wait_ready()``); every one is
    stopped by its PID when the test ends, passed or failed."""
    started: list[ServiceProcess] = []

    def launch(**kwargs: Any) -> ServiceProcess:
        kwargs.setdefault("name", f"svc{len(started)}")
        service = launch_service(tmp_path, **kwargs)
        started.append(service)
        return service

    yield launch
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def healthy_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One healthy service (latency scale 0, default settings) shared by a test module."""
    service = launch_service(tmp_path_factory.mktemp("healthy"), name="healthy")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, its own data directory, stopped by PID afterwards."""
    server = launch_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts ``fragrance-ai worker`` subprocesses (call ``.wait_ready()``); all stopped by PID at the end."""
    started: list[ServiceProcess] = []

    def launch(role: str, redis_url: str, **kwargs: Any) -> ServiceProcess:
        kwargs.setdefault("name", f"worker-{role}{len(started)}")
        worker = launch_worker(tmp_path, role, redis_url, **kwargs)
        started.append(worker)
        return worker

    yield launch
    for worker in started:
        worker.stop()

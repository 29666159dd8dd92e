"""Fixtures of the fragrance-ai tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fa_helpers import ServiceProcess, launch_service


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

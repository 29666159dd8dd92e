"""The example service's image (examples/hello_service.py), built offline by examples/build-hello-image.sh for
the tests that run it on the engine: once per session, under a unique name, removed at the end."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import docker
import pytest

from tests.integration.stagefixtures import CANARY_VERSION, PRODUCTION_VERSION, REPO

BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def hello_image() -> Iterator[str]:
    """The example service's image repository, ``canary-harness-test-hello-<hex>``, tagged with the stages'
    production and canary versions; built with the example's own recipe, removed with its tags at the end."""
    repository = f"canary-harness-test-hello-{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        ["examples/build-hello-image.sh", PRODUCTION_VERSION, CANARY_VERSION],
        cwd=REPO, env={**os.environ, "IMAGE": repository}, capture_output=True, text=True,
        timeout=BUILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    try:
        assert build.returncode == 0, build.stdout + build.stderr
        yield repository
    finally:
        client = docker.from_env()
        for version in (PRODUCTION_VERSION, CANARY_VERSION):
            try:
                client.images.remove(f"{repository}:{version}", force=True)
            except docker.errors.ImageNotFound:
                pass

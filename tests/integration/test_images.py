"""`canary images build` on the real Docker engine: a release image built from its own archive, labelled,
healthy; the second build skipped; a failed check, a tampered archive, an unknown version and an
unreachable engine each refused with nothing left tagged.

Test releases get their own version labels (copies of v0.2.0 under ``v0.0.0-it<pid>…``) so that the
shared ``fragrance-ai-app:v0.1.0``/``v0.2.0`` images are never rebuilt or removed here. Every image and
container a test makes carries ``canary-harness.release=<that version>`` and is removed by id at the end.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from canary_harness.cli import main
from canary_harness.deploy.images import LABEL_HASH, LABEL_RELEASE, LABEL_ROLE, connect, free_loopback_port
from canary_harness.errors import EngineUnavailableError
from canary_harness.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCE_VERSION = "v0.2.0"
PREFIX = f"v0.0.0-it{os.getpid()}"


@dataclass(frozen=True)
class CliRun:
    """One in-process ``canary`` run: exit code, output, wall time."""

    code: int
    out: str
    err: str
    seconds: float


Canary = Callable[..., CliRun]


@pytest.fixture(scope="module")
def docker_client() -> Any:
    """A client of the running engine; skips without one unless CANARY_DOCKER=1 (CI), where it fails."""
    try:
        return connect()
    except EngineUnavailableError as exc:
        if os.environ.get("CANARY_DOCKER") == "1":
            pytest.fail(f"CANARY_DOCKER=1 but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def releases_dir(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Path]:
    """A copy of releases/; at the end, every image and container labelled with a test version is removed."""
    target = tmp_path_factory.mktemp("images") / "releases"
    shutil.copytree(REPO / "releases", target)
    yield target
    label = {"label": LABEL_RELEASE}
    for container in docker_client.containers.list(all=True, filters=label):
        if container.labels.get(LABEL_RELEASE, "").startswith(PREFIX):
            container.remove(force=True)
    # Top-level images only: removing one also prunes its untagged build layers.
    for image in docker_client.images.list(filters=label):
        if (image.labels or {}).get(LABEL_RELEASE, "").startswith(PREFIX):
            docker_client.images.remove(image.id, force=True)


def add_release(releases: Path, suffix: str) -> str:
    """A new release in ``releases``: v0.2.0's archive and manifest under another version label."""
    version = f"{PREFIX}-{suffix}"
    artifacts = releases / "artifacts"
    shutil.copyfile(artifacts / f"fragrance-ai-{SOURCE_VERSION}.tar.gz", artifacts / f"fragrance-ai-{version}.tar.gz")
    manifest = (releases / f"{SOURCE_VERSION}.toml").read_text().replace(SOURCE_VERSION, version)
    (releases / f"{version}.toml").write_text(manifest)
    return version


@pytest.fixture()
def canary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Canary:
    """Run ``canary images ARGS`` in-process (wheels for compose go to a temporary directory)."""

    def run(*args: str) -> CliRun:
        extra = ["--wheels-dir", str(tmp_path / "wheels")] if args[0] == "build" else []
        capsys.readouterr()
        started = time.monotonic()
        code = main(["images", *args, *extra])
        seconds = time.monotonic() - started
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err, seconds)

    return run


@pytest.fixture(scope="module")
def built_version(releases_dir: Path) -> str:
    """A test release (no image yet)."""
    return add_release(releases_dir, "ok")


def tagged(client: Any, version: str) -> Any:
    """The image tagged ``fragrance-ai-app:<version>``, None when absent."""
    from docker.errors import ImageNotFound

    try:
        return client.images.get(f"fragrance-ai-app:{version}")
    except ImageNotFound:
        return None


def labelled(client: Any, version: str) -> list[Any]:
    """Every image (tagged or not, intermediate ones too) labelled with release ``version``."""
    return client.images.list(all=True, filters={"label": f"{LABEL_RELEASE}={version}"})


def test_build_makes_a_labelled_image_that_reports_its_version(
    docker_client: Any, releases_dir: Path, built_version: str, canary: Canary
) -> None:
    assert tagged(docker_client, built_version) is None
    run = canary("build", "--releases-dir", str(releases_dir), "--version", built_version)
    assert run.code == 0, run.err
    assert f"fragrance-ai-app:{built_version}: built" in run.out
    image = tagged(docker_client, built_version)
    assert image is not None
    assert image.labels[LABEL_RELEASE] == built_version
    assert len(image.labels[LABEL_HASH]) == 64
    assert image.attrs["Config"]["User"] == "65534:65534"
    assert image.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"
    # The check container of the build is gone.
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_ROLE}=image-check"})

    port = free_loopback_port()
    container = docker_client.containers.run(
        image.id, ["--port", str(port)], detach=True, network_mode="host",
        labels={LABEL_ROLE: "images-test", LABEL_RELEASE: built_version},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/health"
        response = wait_until(lambda: httpx.get(url, timeout=2), 60, 0.1, url, ignore=(httpx.HTTPError,))
        assert response.json() == {"status": "healthy", "version": built_version}
        code, output = container.exec_run(["python3", "/opt/fragrance/healthcheck.py"])
        assert code == 0, output
    finally:
        container.remove(force=True)


def test_second_build_is_skipped_and_keeps_the_image(
    docker_client: Any, releases_dir: Path, built_version: str, canary: Canary
) -> None:
    before = tagged(docker_client, built_version)
    if before is None:
        canary("build", "--releases-dir", str(releases_dir), "--version", built_version)
        before = tagged(docker_client, built_version)
    run = canary("build", "--releases-dir", str(releases_dir), "--version", built_version)
    assert run.code == 0, run.err
    assert f"fragrance-ai-app:{built_version}: up to date" in run.out
    assert "images: 0 built, 1 up to date" in run.out
    assert tagged(docker_client, built_version).id == before.id
    # Measured about 4 s (most of it the base image's package check); a rebuild takes 20 s or more.
    assert run.seconds < 15, f"cached build took {run.seconds:.1f}s"


def test_a_failed_health_check_leaves_nothing_tagged(
    docker_client: Any, releases_dir: Path, tmp_path: Path, canary: Canary
) -> None:
    version = add_release(releases_dir, "broken")
    # A checkout whose recipe starts a service that dies at once: the build succeeds, the check must not.
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "build-base-image.sh", root / "scripts")
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("wheels", "src", "tests"))
    dockerfile = root / "app" / "Dockerfile"
    original = 'ENTRYPOINT ["fragrance-ai", "--host", "127.0.0.1"]'
    assert original in dockerfile.read_text()
    broken = """ENTRYPOINT ["python3", "-c", "import sys; print('broken release'); sys.exit(3)"]"""
    dockerfile.write_text(dockerfile.read_text().replace(original, broken))

    run = canary("build", "--root", str(root), "--releases-dir", str(releases_dir), "--version", version)
    assert run.code == 1
    assert "exited (3)" in run.err and "broken release" in run.err
    assert tagged(docker_client, version) is None
    assert labelled(docker_client, version) == []
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_RELEASE}={version}"})


def test_a_tampered_artifact_is_refused_and_nothing_is_built(
    docker_client: Any, releases_dir: Path, canary: Canary
) -> None:
    version = add_release(releases_dir, "tampered")
    archive = releases_dir / "artifacts" / f"fragrance-ai-{version}.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0")
    run = canary("build", "--releases-dir", str(releases_dir), "--version", version)
    assert run.code == 2
    assert "sha256 mismatch" in run.err and str(archive) in run.err and "expected" in run.err
    assert labelled(docker_client, version) == []


def test_an_unknown_version_is_refused_naming_the_known_ones(releases_dir: Path, canary: Canary) -> None:
    run = canary("build", "--releases-dir", str(releases_dir), "--version", "v9.9.9")
    assert run.code == 2
    assert "v9.9.9" in run.err and str(releases_dir) in run.err and "v0.1.0, v0.2.0" in run.err


@pytest.mark.parametrize("action", ["build", "list"])
def test_an_unreachable_engine_is_one_line_naming_docker_up(
    action: str, releases_dir: Path, canary: Canary, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    socket_path = tmp_path / "no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    run = canary(action, "--releases-dir", str(releases_dir), *(["--version", "v0.2.0"] if action == "build" else []))
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert str(socket_path) in lines[0] and "scripts/docker-up.sh" in lines[0]
    assert run.out == ""


def test_list_shows_each_release_and_its_image(
    docker_client: Any, releases_dir: Path, built_version: str, canary: Canary
) -> None:
    if tagged(docker_client, built_version) is None:
        canary("build", "--releases-dir", str(releases_dir), "--version", built_version)
    run = canary("list", "--releases-dir", str(releases_dir))
    assert run.code == 0, run.err
    line = next(line for line in run.out.splitlines() if line.startswith(f"fragrance-ai-app:{built_version} "))
    image = tagged(docker_client, built_version)
    assert image.id[7:19] in line and image.labels[LABEL_HASH][:12] in line

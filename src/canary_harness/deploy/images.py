"""Service images built offline: ``fragrance-ai-app:<version>`` from a release's own archive.

For each release: verify the archive against its manifest, make the local base image
(``scripts/build-base-image.sh``, no registry), prepare the wheels on the host (:mod:`.wheels`), then
``docker build`` ``app/Dockerfile`` in a staging context holding only the recipe and those wheels. The
image carries ``canary-harness.release`` and ``canary-harness.content-hash``; the hash covers everything
that goes into the image (archive hash, recipe files, base image id, wheel set, version), so an image
whose label already holds it is kept as it is and the build is skipped.

A new image is built untagged, started once (host network, a free loopback port) and must report its
version on ``/health`` and pass its own HEALTHCHECK command; only then is it tagged. A failed build or
check removes the untagged image: nothing half-built is ever tagged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from canary_harness.deploy.releases import Release, archive_dependencies, load_release
from canary_harness.deploy.wheels import WheelSet, copy_wheels, dependency_wheels, own_wheel
from canary_harness.errors import EngineUnavailableError, ImageError
from canary_harness.waiting import wait_until

if TYPE_CHECKING:  # the docker SDK is an optional extra: imported only when an engine is used
    from docker import DockerClient
    from docker.models.containers import Container

IMAGE_REPOSITORY = "fragrance-ai-app"
DEFAULT_BASE_IMAGE = "canary/python:3.11"
LABEL_RELEASE = "canary-harness.release"
LABEL_HASH = "canary-harness.content-hash"
LABEL_ROLE = "canary-harness.role"
# The files of app/ that make the recipe (the build context is staged from them plus the wheels).
RECIPE_FILES = ("Dockerfile", "healthcheck.py")
BASE_IMAGE_SCRIPT = Path("scripts") / "build-base-image.sh"
HEALTH_TIMEOUT_S = 60.0
SCRIPT_TIMEOUT_S = 600.0
UP_SCRIPT = "scripts/docker-up.sh"


def image_tag(version: str) -> str:
    """The runbook's image name of a release, e.g. ``fragrance-ai-app:v0.2.0``."""
    return f"{IMAGE_REPOSITORY}:{version}"


def content_hash(
    *, version: str, artifact_sha256: str, recipe: dict[str, bytes], base_image_id: str,
    wheels: list[tuple[str, str]],
) -> str:  # fmt: skip
    """SHA-256 over everything an image is made of; equal hashes mean an identical build.

    Args:
        version: the release label (it is baked in as ``APP_VERSION``).
        artifact_sha256: hash of the release's source archive.
        recipe: file name -> bytes of the recipe files (Dockerfile, healthcheck script).
        base_image_id: id of the local base image the Dockerfile starts FROM.
        wheels: (file name, SHA-256) of every wheel installed.
    """
    document = {
        "version": version,
        "artifact": artifact_sha256,
        "recipe": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(recipe.items())},
        "base": base_image_id,
        "wheels": sorted(wheels),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def connect() -> DockerClient:
    """A client of a Docker engine that answers; EngineUnavailableError (naming docker-up.sh) otherwise."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not os.environ.get("DOCKER_HOST") and not (shutil.which("dockerd") or shutil.which("docker")):
        raise EngineUnavailableError(f"Docker is not installed: install and start it with {UP_SCRIPT}")
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise EngineUnavailableError(
            f"the docker SDK is not installed (pip install '.[docker]'); Docker itself: {UP_SCRIPT}"
        ) from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailableError(
            f"Docker engine not reachable at {host} ({_one_line(str(exc))[:160]}): start it with {UP_SCRIPT}"
        ) from exc
    return client


def free_loopback_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def readable_by_all(tree: Path) -> None:
    """Make a build context world-readable: ``COPY`` keeps file modes, and the image's unprivileged user must
    read what it runs. (``canary`` runs with a private umask, so the files it writes start as 0600.)"""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod(0o755 if path.is_dir() else 0o644)


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` did for one release.

    Args:
        version: the release.
        tag: the image name, ``fragrance-ai-app:<version>``.
        image_id: id of the tagged image.
        content_hash: the hash in its label.
        built: False when an up-to-date image was kept (skipped).
        seconds: wall time of the whole step for this release.
        health_seconds: container start to a healthy ``/health`` (None when skipped).
    """

    version: str
    tag: str
    image_id: str
    content_hash: str
    built: bool
    seconds: float
    health_seconds: float | None = None


@dataclass(frozen=True)
class ImageRow:
    """One line of ``canary images list``."""

    version: str
    tag: str
    image_id: str | None
    content_hash: str | None
    created: str | None
    size_mb: float | None


class ImageBuilder:
    """Builds and checks the release images of one repository checkout.

    Args:
        client: a connected docker SDK client (see :func:`connect`).
        root: repository root: ``app/Dockerfile`` and ``scripts/build-base-image.sh`` are read from it.
        releases_dir: where ``<version>.toml`` and ``artifacts/`` live.
        cache_dir: the shared wheel cache.
        base_image: the local image the Dockerfile starts FROM.
        say: where progress lines go.
    """

    def __init__(
        self, client: DockerClient, *, root: Path, releases_dir: Path, cache_dir: Path,
        base_image: str = DEFAULT_BASE_IMAGE, say: Callable[[str], None] = print,
    ) -> None:  # fmt: skip
        self.client = client
        self.root = Path(root)
        self.releases_dir = Path(releases_dir)
        self.cache_dir = Path(cache_dir)
        self.base_image = base_image
        self.say = say
        self._base_image_id: str | None = None

    # ------------------------------------------------------------------ steps
    def release(self, version: str) -> Release:
        """The release, its archive verified against the manifest (ConfigError on mismatch)."""
        release = load_release(self.releases_dir, version)
        release.verify()
        return release

    def base_image_id(self) -> str:
        """Make the base image if needed (once per builder) and return its id."""
        if self._base_image_id is None:
            script = self.root / BASE_IMAGE_SCRIPT
            if not script.is_file():
                raise ImageError(f"base image: {script} not found (is --root the repository root?)")
            try:
                result = subprocess.run(["bash", str(script), self.base_image], capture_output=True, text=True,
                                        timeout=SCRIPT_TIMEOUT_S, check=False)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ImageError(f"base image: {script} did not complete: {exc}") from exc
            if result.returncode != 0:
                last = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
                raise ImageError(f"base image: {script} {self.base_image} exited {result.returncode}:\n{last}")
            self.say(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else f"base {self.base_image}")
            self._base_image_id = str(self.client.images.get(self.base_image).id)
        return self._base_image_id

    def wheels(self, release: Release) -> WheelSet:
        """The release's own wheel (from its archive) and its dependency wheels, from the cache when there."""
        own = own_wheel(release.archive, release.actual_sha256, self.cache_dir)
        dependencies = dependency_wheels(archive_dependencies(release.archive), self.cache_dir)
        return WheelSet(own, dependencies)

    def recipe(self) -> dict[str, bytes]:
        """The recipe files of ``app/`` by name."""
        recipe = {}
        for name in RECIPE_FILES:
            path = self.root / "app" / name
            try:
                recipe[name] = path.read_bytes()
            except OSError as exc:
                raise ImageError(f"image recipe {path}: cannot read: {exc.strerror or exc}") from exc
        return recipe

    def current_hash(self, tag: str) -> tuple[str | None, str | None]:
        """(image id, content-hash label) of the image tagged ``tag``; (None, None) when absent."""
        from docker.errors import ImageNotFound

        try:
            image = self.client.images.get(tag)
        except ImageNotFound:
            return None, None
        return str(image.id), (image.labels or {}).get(LABEL_HASH)

    # ------------------------------------------------------------------ the whole job
    def build(self, version: str, *, force: bool = False, wheels_out: Path | None = None) -> BuildResult:
        """Build ``fragrance-ai-app:<version>`` unless an image with the same content hash exists.

        ``wheels_out``, when given, receives the release's wheel set (``app/wheels`` for docker-compose).
        """
        started = time.monotonic()
        release = self.release(version)
        base_id = self.base_image_id()
        wheels = self.wheels(release)
        if wheels_out is not None:
            copy_wheels(wheels, wheels_out)
            readable_by_all(wheels_out)
        recipe = self.recipe()
        digest = content_hash(version=release.version, artifact_sha256=release.actual_sha256, recipe=recipe,
                              base_image_id=base_id, wheels=wheels.fingerprint())  # fmt: skip
        tag = image_tag(release.version)
        old_id, old_hash = self.current_hash(tag)
        if old_id is not None and old_hash == digest and not force:
            return BuildResult(release.version, tag, old_id, digest, False, time.monotonic() - started)
        from docker.errors import DockerException

        image_id = self._docker_build(release, recipe, wheels, digest)
        try:
            health_seconds = self.check(image_id, release.version)
            self.client.api.tag(image_id, IMAGE_REPOSITORY, release.version, force=True)
        except DockerException as exc:
            self._remove_image(image_id)
            raise ImageError(f"checking or tagging {tag} ({image_id[:19]}): engine error: {exc}") from exc
        except BaseException:
            self._remove_image(image_id)
            raise
        if old_id is not None and old_id != image_id:
            self._remove_image(old_id)  # the replaced build, unless something else still uses it
        return BuildResult(release.version, tag, image_id, digest, True, time.monotonic() - started, health_seconds)

    def _docker_build(self, release: Release, recipe: dict[str, bytes], wheels: WheelSet, digest: str) -> str:
        """``docker build`` in a staging context; returns the id of the new, untagged image."""
        from docker.errors import APIError, BuildError

        with tempfile.TemporaryDirectory(prefix="canary-image-") as tmp:
            context = Path(tmp)
            for name, data in recipe.items():
                (context / name).write_bytes(data)
            copy_wheels(wheels, context / "wheels")
            readable_by_all(context)
            try:
                image, _logs = self.client.images.build(
                    path=str(context), pull=False, rm=True, forcerm=True,
                    buildargs={"BASE_IMAGE": self.base_image, "APP_VERSION": release.version},
                    labels={LABEL_RELEASE: release.version, LABEL_HASH: digest},
                )  # fmt: skip
            except BuildError as exc:
                lines = [str(item.get("stream", item.get("error", ""))).rstrip() for item in exc.build_log]
                last = "\n".join(line for line in lines if line.strip())
                raise ImageError(f"docker build of {image_tag(release.version)} failed: {exc.msg}\n"
                                 + "\n".join(last.splitlines()[-12:])) from exc  # fmt: skip
            except APIError as exc:
                raise ImageError(f"docker build of {image_tag(release.version)}: engine error: {exc}") from exc
        return str(image.id)

    def check(self, image: str, version: str, timeout: float = HEALTH_TIMEOUT_S) -> float:
        """Run ``image`` once on a free loopback port: ``/health`` must report ``version`` and the image's own
        HEALTHCHECK command must pass. The container is removed in every case. Returns start-to-healthy seconds.
        """
        port = free_loopback_port()
        url = f"http://127.0.0.1:{port}/health"
        started = time.monotonic()
        # Created, then started inside the try: a container the engine cannot start is removed too.
        container = self.client.containers.create(
            image, ["--port", str(port)], network_mode="host",
            labels={LABEL_ROLE: "image-check", LABEL_RELEASE: version},
        )  # fmt: skip
        try:
            container.start()
            body = self._wait_healthy(container, url, timeout)
            healthy_after = time.monotonic() - started
            if body.get("version") != version:
                raise ImageError(f"image {image[:19]}: {url} reports version {body.get('version')!r}, "
                                 f"expected {version!r}")  # fmt: skip
            self._run_healthcheck(container, image)
            return healthy_after
        finally:
            self._discard(container)

    def _wait_healthy(self, container: Container, url: str, timeout: float) -> dict[str, Any]:
        def healthy() -> dict[str, Any]:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=15).decode(errors="replace").strip()
                raise ImageError(
                    f"container of {container.image.id[:19]} exited "
                    f"({container.attrs['State'].get('ExitCode')}) before {url} answered:\n{logs}"
                )
            response = httpx.get(url, timeout=2)
            body = response.json() if response.status_code == 200 else {}
            return body if isinstance(body, dict) else {"unexpected": body}

        try:
            return wait_until(healthy, timeout, 0.1, f"{url} to answer 200", ignore=(httpx.HTTPError,))
        except TimeoutError as exc:
            logs = container.logs(tail=15).decode(errors="replace").strip()
            raise ImageError(f"{exc}; container logs:\n{logs}") from exc

    def _run_healthcheck(self, container: Container, image: str) -> None:
        """Run the image's HEALTHCHECK command now (Docker's own schedule would take an interval)."""
        test = (self.client.images.get(image).attrs.get("Config", {}).get("Healthcheck") or {}).get("Test") or []
        if not test or test[0] == "NONE":
            raise ImageError(f"image {image[:19]}: no HEALTHCHECK in the recipe")
        command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
        exit_code, output = container.exec_run(command)
        if exit_code != 0:
            raise ImageError(f"image {image[:19]}: HEALTHCHECK {command} exited {exit_code}: "
                             f"{output.decode(errors='replace').strip()[-300:]}")  # fmt: skip

    def _discard(self, container: Container) -> None:
        from docker.errors import NotFound

        try:
            container.stop(timeout=5)
            container.remove(force=True)
        except NotFound:
            pass

    def _remove_image(self, image_id: str) -> None:
        from docker.errors import APIError

        try:
            self.client.images.remove(image_id, noprune=False)
        except APIError:
            pass  # still tagged elsewhere or used by a container: keep it

    # ------------------------------------------------------------------ listing
    def rows(self, versions: list[str]) -> list[ImageRow]:
        """The image of each version (absent ones included), then any other ``fragrance-ai-app`` tag."""
        rows = []
        images = self.client.images.list(name=IMAGE_REPOSITORY)
        by_tag = {tag: image for image in images for tag in image.tags}
        others = sorted(tag.split(":", 1)[1] for tag in by_tag)
        for version in dict.fromkeys([*versions, *others]):
            image = by_tag.get(image_tag(version))
            if image is None:
                rows.append(ImageRow(version, image_tag(version), None, None, None, None))
                continue
            attrs = image.attrs
            rows.append(ImageRow(version, image_tag(version), str(image.id), (image.labels or {}).get(LABEL_HASH),
                                 str(attrs.get("Created", ""))[:19], int(attrs.get("Size", 0)) / 1e6))  # fmt: skip
        return rows

"""Offline image build figures on this machine: base image, first app image build, cached rebuild,
run → healthy, stop.

1. the base image built from the host's Debian files (under a throwaway tag, so the shared
   ``canary/python:3.11`` stays as it is), and the up-to-date check of the shared one;
2. the first build of a release image: a copy of v0.2.0 under a throwaway version, with an empty wheel
   cache (wheels downloaded and built, ``docker build``, the /health check);
3. the cached rebuild of the same release (skipped by its content hash);
4. ``docker run`` of that image (host network, free loopback port) until /health answers, then
   ``docker stop`` and remove.

Needs a running engine (scripts/docker-up.sh) and root (the base image script). Everything it makes is
removed at the end. Run: ``python benchmarks/image_bench.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from canary_harness.deploy.images import LABEL_RELEASE, LABEL_ROLE, ImageBuilder, connect, free_loopback_port
from canary_harness.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
SOURCE_VERSION = "v0.2.0"


def bench_release(releases: Path, version: str) -> None:
    """Copy releases/ into ``releases`` and add ``version`` as a copy of v0.2.0."""
    shutil.copytree(REPO / "releases", releases)
    artifacts = releases / "artifacts"
    shutil.copyfile(artifacts / f"fragrance-ai-{SOURCE_VERSION}.tar.gz", artifacts / f"fragrance-ai-{version}.tar.gz")
    text = (releases / f"{SOURCE_VERSION}.toml").read_text().replace(SOURCE_VERSION, version)
    (releases / f"{version}.toml").write_text(text)


def timed_base_image(tag: str) -> float:
    """Seconds for scripts/build-base-image.sh TAG."""
    started = time.monotonic()
    subprocess.run(["bash", str(REPO / "scripts" / "build-base-image.sh"), tag], check=True, capture_output=True)
    return time.monotonic() - started


def run_to_healthy(client: object, image: str, version: str) -> tuple[float, float]:
    """(start → /health 200, stop + remove) seconds of one container of ``image``."""
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}/health"
    started = time.monotonic()
    container = client.containers.run(  # type: ignore[attr-defined]
        image, ["--port", str(port)], detach=True, network_mode="host",
        labels={LABEL_ROLE: "image-bench", LABEL_RELEASE: version},
    )  # fmt: skip
    try:
        wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, 60, 0.05, url, ignore=(httpx.HTTPError,))
        healthy = time.monotonic() - started
        started = time.monotonic()
        container.stop(timeout=10)
        container.remove()
        return healthy, time.monotonic() - started
    except BaseException:
        container.remove(force=True)
        raise


def main() -> int:
    """Print the figures; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="containers started for the run/stop figures")
    args = parser.parse_args()
    client = connect()
    version = f"v0.0.0-bench{os.getpid()}"
    base_tag = f"canary/python:bench-{os.getpid()}"
    figures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="canary-image-bench-") as tmp:
        try:
            figures.append(("base image, built", f"{timed_base_image(base_tag):.1f} s"))
            figures.append(("base image, up to date (shared)", f"{timed_base_image('canary/python:3.11'):.1f} s"))
            releases = Path(tmp) / "releases"
            bench_release(releases, version)
            builder = ImageBuilder(client, root=REPO, releases_dir=releases, cache_dir=Path(tmp) / "wheels",
                                   say=lambda _line: None)  # fmt: skip
            first = builder.build(version)
            figures.append(("app image, first build (empty wheel cache)", f"{first.seconds:.1f} s"))
            figures.append(("  of which /health check after start", f"{first.health_seconds or 0:.1f} s"))
            again = builder.build(version)
            assert not again.built and again.image_id == first.image_id, "the cached rebuild rebuilt"
            figures.append(("app image, cached rebuild (skipped, in-process)", f"{again.seconds:.2f} s"))
            cli = [
                sys.executable,
                "-c",
                "from canary_harness.cli import main; raise SystemExit(main())",
                "images",
                "build",
                "--root",
                str(REPO),
                "--releases-dir",
                str(releases),
                "--version",
                version,
                "--wheel-cache",
                str(Path(tmp) / "wheels"),
                "--wheels-dir",
                str(Path(tmp) / "app-wheels"),
            ]
            started = time.monotonic()
            subprocess.run(cli, check=True, capture_output=True)
            figures.append(("`canary images build`, second run (whole command)", f"{time.monotonic() - started:.1f} s"))
            cycles = [run_to_healthy(client, first.image_id, version) for _ in range(max(1, args.runs))]
            healthy = [cycle[0] for cycle in cycles]
            stopped = [cycle[1] for cycle in cycles]
            figures.append((f"docker run → healthy (median of {len(cycles)})", f"{statistics.median(healthy):.2f} s"))
            figures.append((f"docker stop + remove (median of {len(cycles)})", f"{statistics.median(stopped):.2f} s"))
            size = client.images.get(first.image_id).attrs["Size"] / 1e6
            figures.append(("app image size", f"{size:.0f} MB"))
        finally:
            for tag in (f"fragrance-ai-app:{version}", base_tag):
                try:
                    client.images.remove(tag, force=True)
                except Exception:  # absent when a step failed before making it
                    pass
    width = max(len(name) for name, _ in figures)
    print("image_bench (offline image build, this machine)")
    for name, value in figures:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

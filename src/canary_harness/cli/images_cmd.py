"""`canary images build` (release images, offline and cached) and `canary images list`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from canary_harness.deploy.images import DEFAULT_BASE_IMAGE, ImageBuilder, connect
from canary_harness.deploy.releases import known_versions, load_release
from canary_harness.deploy.wheels import default_cache_dir
from canary_harness.errors import ConfigError, EngineUnavailableError
from canary_harness.reporting.longwait import LongWait


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``images`` with its ``build`` and ``list`` actions."""
    images = subparsers.add_parser(
        "images", help="build or list the release images (fragrance-ai-app:<version>)",
        description="Container images of the releases in releases/, built offline from each release's own "
                    "archive. Needs a running Docker engine (scripts/docker-up.sh).",
    )  # fmt: skip
    actions = images.add_subparsers(dest="images_action", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build", help="build the image of each release (skipped when up to date)",
        description="For each release: verify its artifact's SHA-256, make the base image, prepare the wheels "
                    "on the host, docker build app/Dockerfile, then run the image once and check /health. "
                    "An image whose content-hash label matches is kept (skipped). Exit 0 when every "
                    "image is up to date, 1 when a build or check failed, 2 for bad input or no engine.",
    )  # fmt: skip
    build.add_argument(
        "--version",
        action="append",
        dest="versions",
        metavar="V",
        help="release to build (repeatable; default: every release in --releases-dir)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even when the image is up to date")
    build.add_argument(
        "--base-image",
        default=DEFAULT_BASE_IMAGE,
        help=f"local base image the Dockerfile starts FROM (default {DEFAULT_BASE_IMAGE})",
    )
    build.add_argument(
        "--wheel-cache", help="shared wheel cache (default $CANARY_WHEEL_CACHE, else ~/.cache/canary-harness/wheels)"
    )
    build.add_argument(
        "--wheels-dir",
        help="also leave the newest built release's wheels here for docker-compose builds (default <root>/app/wheels)",
    )
    _common(build)
    build.set_defaults(handler=_build)

    listing = actions.add_parser("list", help="the image of each release, with its content hash")
    _common(listing)
    listing.set_defaults(handler=_list)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--releases-dir", help="where <version>.toml and artifacts/ live (default <root>/releases)")
    parser.add_argument("--root", default=".", help="repository root (default: the current directory)")


def _releases_dir(args: argparse.Namespace) -> Path:
    return Path(args.releases_dir) if args.releases_dir else Path(args.root) / "releases"


def _versions(args: argparse.Namespace, releases_dir: Path) -> list[str]:
    """The versions asked for, each checked to exist before anything is built."""
    if not args.versions:
        versions = known_versions(releases_dir)
        if not versions:
            raise ConfigError(f"releases directory {str(releases_dir)!r}: no <version>.toml release manifest")
        return versions
    for version in args.versions:
        load_release(releases_dir, version)  # unknown version: names the directory and the known ones
    return list(dict.fromkeys(args.versions))


def _build(args: argparse.Namespace) -> int:
    releases_dir = _releases_dir(args)
    versions = _versions(args, releases_dir)
    for version in versions:
        # Every archive is verified before the first build, so a bad one changes nothing.
        load_release(releases_dir, version).verify()
    try:
        client = connect()
    except EngineUnavailableError as exc:
        print(f"canary: error: {exc}", file=sys.stderr)
        return 2
    waits: list[LongWait] = []  # the wait in progress, if any: the builder's lines go above its spinner
    builder = ImageBuilder(
        client, root=Path(args.root), releases_dir=releases_dir,
        cache_dir=Path(args.wheel_cache) if args.wheel_cache else default_cache_dir(),
        base_image=args.base_image, say=lambda line: waits[-1].line(line) if waits else print(line, flush=True),
    )  # fmt: skip
    wheels_dir = Path(args.wheels_dir) if args.wheels_dir else Path(args.root) / "app" / "wheels"
    started = time.monotonic()
    built = 0
    for version in versions:
        newest = version == versions[-1]
        with LongWait(f"canary images build: {version}") as wait:
            waits.append(wait)
            result = builder.build(version, force=args.force, wheels_out=wheels_dir if newest else None)
        waits.clear()
        if result.built:
            built += 1
            print(
                f"{result.tag}: built {result.image_id[7:19]} in {result.seconds:.1f}s, /health reported "
                f"{version} after {result.health_seconds:.1f}s (content {result.content_hash[:12]})",
                flush=True,
            )
        else:
            print(
                f"{result.tag}: up to date {result.image_id[7:19]} (content {result.content_hash[:12]}), "
                f"skipped in {result.seconds:.1f}s",
                flush=True,
            )
    print(f"images: {built} built, {len(versions) - built} up to date, {time.monotonic() - started:.1f}s")
    return 0


def _list(args: argparse.Namespace) -> int:
    releases_dir = _releases_dir(args)
    try:
        client = connect()
    except EngineUnavailableError as exc:
        print(f"canary: error: {exc}", file=sys.stderr)
        return 2
    builder = ImageBuilder(client, root=Path(args.root), releases_dir=releases_dir, cache_dir=default_cache_dir())
    rows = builder.rows(known_versions(releases_dir))
    print(f"{'IMAGE':<28}  {'ID':<12}  {'CREATED (UTC)':<19}  {'SIZE':>7}  CONTENT")
    for row in rows:
        if row.image_id is None:
            print(
                f"{row.tag:<28}  {'-':<12}  {'-':<19}  {'-':>7}  not built (canary images build --version "
                f"{row.version})"
            )
        else:
            size = f"{row.size_mb:.0f}MB" if row.size_mb is not None else "-"
            print(
                f"{row.tag:<28}  {row.image_id[7:19]:<12}  {row.created or '-':<19}  {size:>7}  "
                f"{(row.content_hash or 'no label')[:12]}"
            )
    return 0

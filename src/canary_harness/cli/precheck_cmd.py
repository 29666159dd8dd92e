"""`canary precheck` (the pre-deployment checklist) and `canary release-manifest` (record a release)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from canary_harness.config import parse_version
from canary_harness.configuration.cli import add_setting, config_path
from canary_harness.precheck import PrecheckReport, Status, run_precheck
from canary_harness.release_manifest import record_release

_COLORS = {Status.PASS: "\033[32m", Status.WARN: "\033[33m", Status.FAIL: "\033[31;1m"}
_RESET = "\033[0m"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``precheck`` and ``release-manifest``."""
    pre = subparsers.add_parser(
        "precheck", help="pre-deployment checklist of a release (changes nothing)",
        description="Check a release before rolling it out: semver version, release manifest or git tag, "
                    "artifact SHA-256s, secrets (names only), canary.toml, NGINX templates and nginx -t, "
                    "runbook. Exit 0 when nothing fails (with --strict: nothing warns either), 2 when "
                    "canary.toml is invalid (a bad value, an unknown key), else 1.",
    )  # fmt: skip
    pre.add_argument("--version", required=True, help="release to check, e.g. v0.2.0")
    pre.add_argument("--strict", action="store_true", help="fail on warnings too")
    add_setting(pre, "config_file", help="canary.toml to validate (default <root>/canary.toml if present)")
    pre.add_argument("--releases-dir", help="where <version>.toml manifests live (default <root>/releases)")
    pre.add_argument("--root", default=".", help="repository root (default: the current directory)")
    # Not [traffic] nginx_bin (the user's NGINX): the one that checks the harness's own templates.
    pre.add_argument(
        "--nginx-bin", dest="nginx_test_bin", help="nginx executable for nginx -t (default: nginx on PATH)"
    )
    pre.set_defaults(handler=_precheck)

    rec = subparsers.add_parser(
        "release-manifest", help="(re)write releases/<version>.toml with fresh artifact hashes",
        description="Build the reproducible source archive of the service (pyproject.toml and src/) into "
                    "releases/artifacts/, re-hash every artifact and write the manifest. An existing "
                    "manifest keeps its notes, date, secrets and runbook.",
    )  # fmt: skip
    rec.add_argument("--version", required=True, help="release to record, e.g. v0.2.0 (semver)")
    rec.add_argument("--root", default=".", help="repository root (default: the current directory)")
    rec.add_argument("--source", default="app", help="service directory, relative to the root (default app)")
    rec.add_argument("--releases-dir", help="default <root>/releases")
    rec.add_argument("--notes", help="release notes (default: keep the existing ones)")
    rec.add_argument("--date", help="release date YYYY-MM-DD (default: keep the existing one, else today)")
    rec.set_defaults(handler=_release_manifest)


def _use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def format_report(report: PrecheckReport, *, strict: bool = False, color: bool = False) -> str:
    """The checklist as an aligned table with a verdict line; multi-line reasons continue indented."""
    width = max([len("CHECK"), *(len(result.name) for result in report.results)])
    lines = [
        f"canary precheck {report.version}  (root {report.root.resolve()})",
        "",
        f"  {'CHECK':<{width}}  RESULT  REASON",
    ]
    for result in report.results:
        status = result.status.value
        if color:
            status = f"{_COLORS[result.status]}{status}{_RESET}"
        first, *rest = result.reason.splitlines() or [""]
        lines.append(f"  {result.name:<{width}}  {status}    {first}")
        lines.extend(f"  {'':<{width}}          {line}" for line in rest)
    passed, warned, failed = (report.count(status) for status in Status)
    verdict = "ready" if report.ok(strict) else "NOT ready"
    why = ""
    if failed:
        why = ": fix the FAIL lines above"
    elif warned and strict:
        why = ": warnings count as failures with --strict"
    elif warned:
        why = " (--strict would fail on the warnings)"
    lines += ["", f"precheck {report.version}: {passed} passed, {warned} warning(s), {failed} failed: {verdict}{why}"]
    return "\n".join(lines)


def _precheck(args: argparse.Namespace) -> int:
    version = parse_version(args.version, "from --version")
    report = run_precheck(
        version,
        root=Path(args.root),
        releases_dir=Path(args.releases_dir) if args.releases_dir else None,
        config_file=config_path(args),
        nginx_bin=args.nginx_test_bin,
    )
    print(format_report(report, strict=args.strict, color=_use_color()), flush=True)
    if any(row.name.startswith("config") and row.status is Status.FAIL for row in report.results):
        return 2  # a bad canary.toml is bad input, as everywhere else in `canary` (the checklist is printed first)
    return 0 if report.ok(args.strict) else 1


def _release_manifest(args: argparse.Namespace) -> int:
    path, manifest = record_release(
        args.version, root=Path(args.root), source=args.source,
        releases_dir=Path(args.releases_dir) if args.releases_dir else None,
        notes=args.notes, date=args.date,
    )  # fmt: skip
    print(f"wrote {path}")
    for artifact in manifest.artifacts:
        print(f"  {artifact.path}  sha256 {artifact.sha256}")
    print(f"check it with: canary precheck --version {manifest.version}")
    return 0

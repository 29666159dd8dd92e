"""The pre-deployment checklist behind ``canary precheck``: read-only checks, each PASS, WARN or FAIL with a
reason.

Checks: the version is semver; the release exists (its manifest, or a git tag of that name); every
artifact matches its recorded SHA-256; the secrets the release needs are set (names only: a value is
never read beyond "empty or not"); canary.toml parses and each section validates with the code that reads
it (:mod:`canary_harness.config_sections`); the NGINX templates render and ``nginx -t`` accepts the result
(in a temporary prefix); the runbook exists. Nothing in the repository or the run directory is written.
The manifest format and ``canary release-manifest`` are in :mod:`canary_harness.release_manifest`.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.config import StackSettings, parse_version, resolve_stack_settings
from canary_harness.config_sections import ARRAY_READERS, SECTION_READERS, validate_section
from canary_harness.errors import ConfigError, TrafficError
from canary_harness.release_manifest import (
    DEFAULT_RUNBOOK,
    ReleaseManifest,
    inside,
    is_semver,
    load_manifest,
    manifest_path,
    sha256_of,
    show_path,
)
from canary_harness.target import load_config

# Canary weights the NGINX templates must render at: both ends (a server "down") and the default stages.
RENDER_WEIGHTS: tuple[int, ...] = (0, 1, 5, 25, 100)


# --------------------------------------------------------------------------- results
class Status(enum.StrEnum):
    """Outcome of one check."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the checklist: what was checked, its outcome and why."""

    name: str
    status: Status
    reason: str


@dataclass(frozen=True)
class PrecheckReport:
    """Every check of one precheck run, in order."""

    version: str
    root: Path
    results: tuple[ChecklistItem, ...]

    def count(self, status: Status) -> int:
        """How many checks ended in ``status``."""
        return sum(1 for result in self.results if result.status is status)

    def ok(self, strict: bool = False) -> bool:
        """No FAIL (and, when ``strict``, no WARN either)."""
        bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
        return not any(result.status in bad for result in self.results)


# --------------------------------------------------------------------------- the checks
def check_version(version: str) -> ChecklistItem:
    """The version must be semver with a leading ``v``."""
    if is_semver(version):
        return ChecklistItem("version", Status.PASS, f"{version} is semver")
    reason = f"{version!r} is not semver (vMAJOR.MINOR.PATCH[-pre], e.g. v0.2.0)"
    return ChecklistItem("version", Status.FAIL, reason)


def git_tag_exists(root: Path, version: str) -> bool:
    """Whether the repository at ``root`` has a tag named ``version`` (False without git or a repository)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"refs/tags/{version}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def check_release(version: str, root: Path, releases_dir: Path) -> tuple[ChecklistItem, ReleaseManifest | None]:
    """The release exists: its manifest (validated) or, failing that, a git tag of the same name."""
    path = manifest_path(releases_dir, version)
    shown = show_path(path, root)
    tagged = git_tag_exists(root, version)
    if not path.exists():
        if tagged:
            return ChecklistItem("release", Status.PASS, f"git tag {version} (no manifest {shown})"), None
        reason = f"no release manifest {shown} and no git tag {version}"
        return ChecklistItem("release", Status.FAIL, reason), None
    try:
        manifest = load_manifest(path)
    except ConfigError as exc:
        return ChecklistItem("release", Status.FAIL, str(exc)), None
    if manifest.version != version:
        reason = f"{shown} declares version {manifest.version!r}, not {version!r}"
        return ChecklistItem("release", Status.FAIL, reason), None
    summary = _headline(manifest.notes)
    tag = f"; git tag {version}" if tagged else ""
    return ChecklistItem("release", Status.PASS, f"{shown} ({manifest.date}): {summary}{tag}"), manifest


def check_artifacts(manifest: ReleaseManifest | None, root: Path) -> list[ChecklistItem]:
    """Every artifact exists inside the root and hashes to its recorded SHA-256."""
    if manifest is None:
        return [ChecklistItem("artifacts", Status.WARN, "no release manifest: no artifact to verify")]
    if not manifest.artifacts:
        return [ChecklistItem("artifacts", Status.WARN, "the manifest declares no artifacts")]
    results = []
    for artifact in manifest.artifacts:
        name = f"artifact {Path(artifact.path).name}"
        try:
            path = inside(root, artifact.path, "artifact")
        except ConfigError as exc:
            results.append(ChecklistItem(name, Status.FAIL, str(exc)))
            continue
        if not path.is_file():
            results.append(ChecklistItem(name, Status.FAIL, f"not found: {show_path(path, root)}"))
            continue
        found = sha256_of(path)
        if found == artifact.sha256:
            results.append(ChecklistItem(name, Status.PASS, f"{artifact.path}: sha256 {found[:16]}… matches"))
        else:
            results.append(ChecklistItem(
                name, Status.FAIL,
                f"sha256 mismatch: recorded {artifact.sha256[:16]}…, file has {found[:16]}… "
                "(if the change is intended, re-record it with canary release-manifest)",
            ))  # fmt: skip
    return results


def check_secrets(manifest: ReleaseManifest | None, environ: Mapping[str, str]) -> list[ChecklistItem]:
    """Each declared secret is set and non-empty. Only names are reported, never values."""
    if manifest is None:
        return [ChecklistItem("secrets", Status.WARN, "no release manifest: the secrets it needs are unknown")]
    if not manifest.secrets:
        return [ChecklistItem("secrets", Status.PASS, "the release declares no secrets")]
    results = []
    for secret in manifest.secrets:
        name = f"secret {secret.name}"
        why = f": {secret.description}" if secret.description else ""
        if environ.get(secret.name, "").strip():
            results.append(ChecklistItem(name, Status.PASS, "set"))
        elif secret.required:
            results.append(ChecklistItem(name, Status.FAIL, f"required, not set in the environment{why}"))
        else:
            results.append(ChecklistItem(name, Status.WARN, f"optional, not set in the environment{why}"))
    return results


def check_canary_toml(
    config_file: Path | None, root: Path, environ: Mapping[str, str] | None = None
) -> tuple[list[ChecklistItem], dict[str, Any] | None]:
    """canary.toml (the given file, else ``<root>/canary.toml`` if present) parses and each section validates
    with the code that reads it (:data:`canary_harness.config_sections.SECTION_READERS`).

    Returns the results and the parsed document (None when it could not be read).
    """
    path = config_file if config_file is not None else root / "canary.toml"
    if config_file is None and not path.exists():
        return [ChecklistItem("config", Status.PASS, "no canary.toml: built-in defaults apply")], {}
    shown = show_path(path, root)
    try:
        document = load_config(path, environ=environ)  # with its target profile's tables, if it names one
    except ConfigError as exc:
        return [ChecklistItem(f"config {shown}", Status.FAIL, str(exc))], None
    sections = ", ".join(document) or "none"
    results = [ChecklistItem(f"config {shown}", Status.PASS, f"parsed, sections: {sections}")]
    for name, section in document.items():
        check = f"config [{name}]"
        if name in ARRAY_READERS:
            try:
                ARRAY_READERS[name](section, f"canary.toml [[{name}]]")
            except ConfigError as exc:
                results.append(ChecklistItem(f"config [[{name}]]", Status.FAIL, str(exc)))
            else:
                results.append(ChecklistItem(f"config [[{name}]]", Status.PASS, f"valid, {len(section)} steps"))
            continue
        if name not in SECTION_READERS:
            known = ", ".join([*(f"[{key}]" for key in SECTION_READERS), *(f"[[{key}]]" for key in ARRAY_READERS)])
            results.append(ChecklistItem(check, Status.WARN, f"unknown section (ignored); known: {known}"))
            continue
        if not isinstance(section, Mapping):
            results.append(ChecklistItem(check, Status.FAIL, f"must be a table, got {section!r}"))
            continue
        try:
            warnings = validate_section(name, section, environ, shown)
        except ConfigError as exc:
            results.append(ChecklistItem(check, Status.FAIL, str(exc)))
            continue
        if warnings:
            results.append(ChecklistItem(check, Status.WARN, "; ".join(warnings)))
        else:
            results.append(ChecklistItem(check, Status.PASS, "valid"))
    results += _ratio_counters(document, shown)
    return results, document


def _ratio_counters(document: Mapping[str, Any], shown: str) -> list[ChecklistItem]:
    """Ratio checks need counters to read: refused with [metrics] counters = "none", as a stage refuses them."""
    from canary_harness.judge.ratio_settings import refuse_uncountable
    from canary_harness.judge.settings import JudgeSettings
    from canary_harness.metrics.source_settings import MetricsSettings

    try:
        judge = JudgeSettings.from_mapping(document.get("judge", {}), f"{shown} [judge]")
        metrics = MetricsSettings.from_mapping(document.get("metrics", {}), f"{shown} [metrics]")
    except ConfigError:
        return []  # already reported with its section
    if not judge.ratios:
        return []
    try:
        refuse_uncountable(judge.ratios, judge.checks, metrics.counters, shown)
    except ConfigError as exc:
        return [ChecklistItem("config [[judge.ratios]]", Status.FAIL, str(exc))]
    counted = f"{len(judge.ratios)} ratio check(s), counters read from the service"
    return [ChecklistItem("config [[judge.ratios]]", Status.PASS, counted)]


def _find_nginx(nginx_bin: str | None) -> str | None:
    from canary_harness.traffic.nginx_process import find_nginx

    if nginx_bin:
        return shutil.which(nginx_bin)
    try:
        return find_nginx()
    except TrafficError:
        return None


def check_nginx(template_dir: Path, root: Path, stack: StackSettings, nginx_bin: str | None) -> list[ChecklistItem]:
    """The templates exist and render at every weight; ``nginx -t`` accepts the rendered configuration."""
    from canary_harness.traffic.nginx import MAIN_TEMPLATE, UPSTREAM_TEMPLATE, NginxTrafficController
    from canary_harness.traffic.render import render_main, render_upstream

    production = f"{stack.host}:{stack.production_port}"
    canary = f"{stack.host}:{stack.canary_port}"
    main_path, upstream_path = template_dir / MAIN_TEMPLATE, template_dir / UPSTREAM_TEMPLATE
    missing = [show_path(path, root) for path in (main_path, upstream_path) if not path.is_file()]
    if missing:
        return [
            ChecklistItem("nginx templates", Status.FAIL, f"missing: {', '.join(missing)}"),
            ChecklistItem("nginx -t", Status.FAIL, "not run: templates missing"),
        ]
    try:
        render_main(
            main_path.read_text(),
            listen_host=stack.host,
            listen_port=stack.nginx_port,
            group_header=stack.group_header,
            source=show_path(main_path, root),
        )
        template = upstream_path.read_text()
        for weight in RENDER_WEIGHTS:
            render_upstream(
                template,
                100 - weight,
                weight,
                production=production,
                canary=canary,
                source=show_path(upstream_path, root),
            )
    except TrafficError as exc:
        return [
            ChecklistItem("nginx templates", Status.FAIL, str(exc)),
            ChecklistItem("nginx -t", Status.FAIL, "not run: the templates do not render"),
        ]
    weights = "/".join(str(weight) for weight in RENDER_WEIGHTS)
    rendered = ChecklistItem(
        "nginx templates", Status.PASS,
        f"{show_path(main_path, root)} and {show_path(upstream_path, root)} render at canary {weights} %",
    )  # fmt: skip
    binary = _find_nginx(nginx_bin)
    if binary is None:
        reason = f"skipped: nginx binary {nginx_bin or 'nginx'!r} not found (apt-get install -y nginx)"
        return [rendered, ChecklistItem("nginx -t", Status.WARN, reason)]
    with tempfile.TemporaryDirectory(prefix="canary-precheck-") as scratch:
        controller = NginxTrafficController(
            Path(scratch) / "nginx", listen_port=stack.nginx_port, production=production, canary=canary,
            listen_host=stack.host, template_dir=template_dir, nginx_bin=binary,
        )  # fmt: skip
        try:
            # Lays out a private prefix, renders nginx.conf and the upstream, runs nginx -t on them.
            controller.prepare(canary_weight=RENDER_WEIGHTS[2])
        except TrafficError as exc:
            return [rendered, ChecklistItem("nginx -t", Status.FAIL, str(exc).replace(scratch, "<tmp>"))]
    return [rendered, ChecklistItem("nginx -t", Status.PASS, f"{binary} accepts the rendered configuration")]


def check_runbook(manifest: ReleaseManifest | None, root: Path) -> ChecklistItem:
    """The operator runbook the manifest names (default docs/runbook.md) exists and is not empty."""
    relative = manifest.runbook if manifest is not None else DEFAULT_RUNBOOK
    try:
        path = inside(root, relative, "runbook")
    except ConfigError as exc:
        return ChecklistItem("runbook", Status.FAIL, str(exc))
    if not path.is_file():
        return ChecklistItem("runbook", Status.FAIL, f"not found: {relative}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not any(line.strip() for line in lines):
        return ChecklistItem("runbook", Status.FAIL, f"{relative} is empty")
    return ChecklistItem("runbook", Status.PASS, f"{relative} ({len(lines)} lines)")


def run_precheck(
    version: str,
    *,
    root: Path = Path("."),
    releases_dir: Path | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    nginx_bin: str | None = None,
) -> PrecheckReport:
    """Run every check for ``version`` against the repository at ``root``. Writes nothing.

    ``version`` must be a safe label (ConfigError otherwise: it is bad input, not a failed check);
    whether it is semver is the first check. ``releases_dir`` defaults to ``<root>/releases``,
    ``config_file`` to ``<root>/canary.toml`` when present, ``environ`` to ``os.environ``.
    """
    version = parse_version(version, "precheck version")
    environ = os.environ if environ is None else environ
    root = Path(root)
    releases = Path(releases_dir) if releases_dir is not None else root / "releases"
    results: list[ChecklistItem] = [check_version(version)]
    release, manifest = check_release(version, root, releases)
    results.append(release)
    results.extend(check_artifacts(manifest, root))
    results.extend(check_secrets(manifest, environ))
    config_results, document = check_canary_toml(config_file, root, environ)
    results.extend(config_results)
    section = (document or {}).get("stack", {})
    try:
        stack = resolve_stack_settings(toml={"stack": section if isinstance(section, Mapping) else {}}, environ=environ)
    except ConfigError:
        stack = StackSettings()  # the config rows above already say what is wrong
    template_dir = Path(environ.get("CANARY_NGINX_TEMPLATES", "") or root / "nginx")
    results.extend(check_nginx(template_dir, root, stack, nginx_bin))
    results.append(check_runbook(manifest, root))
    return PrecheckReport(version=version, root=root, results=tuple(results))


def _headline(notes: str, limit: int = 72) -> str:
    """The first sentence or line of the release notes, cut to fit a table row."""
    text = " ".join(notes.split())
    if not text:
        return "no notes"
    first = re.split(r"(?<=[.;:])\s", text, maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"

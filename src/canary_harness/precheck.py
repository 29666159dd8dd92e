"""The pre-deployment checklist behind ``canary precheck``: read-only checks, each PASS, WARN or FAIL with a
reason, and the release manifests they read (``releases/<version>.toml``).

Checks: the version is semver; the release exists (its manifest, or a git tag of that name); every
artifact matches its recorded SHA-256; the secrets the release needs are set (names only: a value is
never read beyond "empty or not"); canary.toml parses and its sections validate; the NGINX templates
render and ``nginx -t`` accepts the result (in a temporary prefix); the runbook exists. Nothing in the
repository or the run directory is written.

Recording a release (``canary release-manifest``) is here too, next to the format it writes:
:func:`record_release` builds a reproducible source archive of the service and records its hash.
"""

from __future__ import annotations

import datetime as dt
import enum
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary_harness.config import StackSettings, load_toml, parse_version, resolve_stack_settings
from canary_harness.errors import ConfigError, TrafficError

SEMVER_RE = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_RUNBOOK = "docs/runbook.md"
ARTIFACTS_DIR = "artifacts"
# Canary weights the NGINX templates must render at: both ends (a server "down") and the default stages.
RENDER_WEIGHTS: tuple[int, ...] = (0, 1, 5, 25, 100)


# --------------------------------------------------------------------------- results
class Status(enum.StrEnum):
    """Outcome of one check."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist: what was checked, its outcome and why."""

    name: str
    status: Status
    reason: str


@dataclass(frozen=True)
class PrecheckReport:
    """Every check of one precheck run, in order."""

    version: str
    root: Path
    results: tuple[CheckResult, ...]

    def count(self, status: Status) -> int:
        """How many checks ended in ``status``."""
        return sum(1 for result in self.results if result.status is status)

    def ok(self, strict: bool = False) -> bool:
        """No FAIL (and, when ``strict``, no WARN either)."""
        bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
        return not any(result.status in bad for result in self.results)


# --------------------------------------------------------------------------- release manifests
@dataclass(frozen=True)
class Artifact:
    """A file of the release, relative to the repository root, with its expected SHA-256."""

    path: str
    sha256: str
    description: str = ""


@dataclass(frozen=True)
class SecretSpec:
    """A secret the release needs in the environment: a missing required one fails, an optional one warns."""

    name: str
    required: bool
    description: str = ""


@dataclass(frozen=True)
class ReleaseManifest:
    """``releases/<version>.toml``: what a release is made of and what it needs to run."""

    version: str
    date: str
    notes: str
    artifacts: tuple[Artifact, ...] = ()
    secrets: tuple[SecretSpec, ...] = ()
    runbook: str = DEFAULT_RUNBOOK


def manifest_path(releases_dir: Path, version: str) -> Path:
    """Where the manifest of ``version`` lives."""
    return Path(releases_dir) / f"{version}.toml"


def is_semver(version: str) -> bool:
    """``vMAJOR.MINOR.PATCH[-pre][+build]`` by the semver 2.0 rules (no leading zeros)."""
    return SEMVER_RE.match(version) is not None


def _text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: missing key {key!r}")
    if isinstance(value, dt.date):  # TOML dates are allowed for `date`
        return value.isoformat()
    if not isinstance(value, str):
        raise ConfigError(f"{where}: key {key!r} must be a string, got {value!r}")
    return value


def _tables(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ConfigError(f"{where}: {key!r} must be an array of tables ([[{key}]])")
    return value


def load_manifest(path: Path) -> ReleaseManifest:
    """Read and validate a manifest; ConfigError naming the file and the bad key otherwise."""
    where = f"release manifest {str(path)!r}"
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from exc
    artifacts = []
    for index, item in enumerate(_tables(data, "artifacts", where)):
        at = f"{where} artifacts[{index}]"
        sha = _text(item, "sha256", at).lower()
        if not _SHA256_RE.match(sha):
            raise ConfigError(f"{at}: sha256 {sha!r} is not 64 hex digits")
        artifacts.append(Artifact(_text(item, "path", at), sha, _text(item, "description", at, "")))
    secrets = []
    for index, item in enumerate(_tables(data, "required_secrets", where)):
        at = f"{where} required_secrets[{index}]"
        name = _text(item, "name", at)
        if not _SECRET_NAME_RE.match(name):
            raise ConfigError(f"{at}: name {name!r} is not an environment variable name")
        required = item.get("required", True)
        if not isinstance(required, bool):
            raise ConfigError(f"{at}: 'required' must be true or false, got {required!r}")
        secrets.append(SecretSpec(name, required, _text(item, "description", at, "")))
    return ReleaseManifest(
        version=_text(data, "version", where),
        date=_text(data, "date", where),
        notes=_text(data, "notes", where, ""),
        artifacts=tuple(artifacts),
        secrets=tuple(secrets),
        runbook=_text(data, "runbook", where, DEFAULT_RUNBOOK),
    )


def _inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, refusing absolute paths and paths that leave the root."""
    if Path(relative).is_absolute():
        raise ConfigError(f"{what} path {relative!r}: must be relative to the repository root")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ConfigError(f"{what} path {relative!r}: leaves the repository root {root}")
    return path


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# --------------------------------------------------------------------------- the checks
def check_version(version: str) -> CheckResult:
    """The version must be semver with a leading ``v``."""
    if is_semver(version):
        return CheckResult("version", Status.PASS, f"{version} is semver")
    reason = f"{version!r} is not semver (vMAJOR.MINOR.PATCH[-pre], e.g. v0.2.0)"
    return CheckResult("version", Status.FAIL, reason)


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


def check_release(
    version: str, root: Path, releases_dir: Path
) -> tuple[CheckResult, ReleaseManifest | None]:
    """The release exists: its manifest (validated) or, failing that, a git tag of the same name."""
    path = manifest_path(releases_dir, version)
    shown = _show(path, root)
    tagged = git_tag_exists(root, version)
    if not path.exists():
        if tagged:
            return CheckResult("release", Status.PASS, f"git tag {version} (no manifest {shown})"), None
        reason = f"no release manifest {shown} and no git tag {version}"
        return CheckResult("release", Status.FAIL, reason), None
    try:
        manifest = load_manifest(path)
    except ConfigError as exc:
        return CheckResult("release", Status.FAIL, str(exc)), None
    if manifest.version != version:
        reason = f"{shown} declares version {manifest.version!r}, not {version!r}"
        return CheckResult("release", Status.FAIL, reason), None
    summary = _headline(manifest.notes)
    tag = f"; git tag {version}" if tagged else ""
    return CheckResult("release", Status.PASS, f"{shown} ({manifest.date}): {summary}{tag}"), manifest


def check_artifacts(manifest: ReleaseManifest | None, root: Path) -> list[CheckResult]:
    """Every artifact exists inside the root and hashes to its recorded SHA-256."""
    if manifest is None:
        return [CheckResult("artifacts", Status.WARN, "no release manifest: no artifact to verify")]
    if not manifest.artifacts:
        return [CheckResult("artifacts", Status.WARN, "the manifest declares no artifacts")]
    results = []
    for artifact in manifest.artifacts:
        name = f"artifact {Path(artifact.path).name}"
        try:
            path = _inside(root, artifact.path, "artifact")
        except ConfigError as exc:
            results.append(CheckResult(name, Status.FAIL, str(exc)))
            continue
        if not path.is_file():
            results.append(CheckResult(name, Status.FAIL, f"not found: {_show(path, root)}"))
            continue
        found = sha256_of(path)
        if found == artifact.sha256:
            results.append(CheckResult(name, Status.PASS, f"{artifact.path}: sha256 {found[:16]}… matches"))
        else:
            results.append(CheckResult(
                name, Status.FAIL,
                f"sha256 mismatch: recorded {artifact.sha256[:16]}…, file has {found[:16]}… "
                "(if the change is intended, re-record it with canary release-manifest)",
            ))  # fmt: skip
    return results


def check_secrets(manifest: ReleaseManifest | None, environ: Mapping[str, str]) -> list[CheckResult]:
    """Each declared secret is set and non-empty. Only names are reported, never values."""
    if manifest is None:
        return [CheckResult("secrets", Status.WARN, "no release manifest: the secrets it needs are unknown")]
    if not manifest.secrets:
        return [CheckResult("secrets", Status.PASS, "the release declares no secrets")]
    results = []
    for secret in manifest.secrets:
        name = f"secret {secret.name}"
        why = f": {secret.description}" if secret.description else ""
        if environ.get(secret.name, "").strip():
            results.append(CheckResult(name, Status.PASS, "set"))
        elif secret.required:
            results.append(CheckResult(name, Status.FAIL, f"required, not set in the environment{why}"))
        else:
            results.append(CheckResult(name, Status.WARN, f"optional, not set in the environment{why}"))
    return results


def _validate_stack(section: Mapping[str, Any]) -> list[str]:
    known = {"nginx_port", "production_port", "canary_port", "run_dir", "production_version",
             "canary_version"}
    resolve_stack_settings(toml={"stack": section}, environ={})
    return [f"unknown key {key!r} (ignored)" for key in sorted(set(section) - known)]


def _validate_stage(section: Mapping[str, Any]) -> list[str]:
    from canary_harness.pytest_plugin.options import SPECS  # imports pytest: only when needed

    parsers = {spec.toml_key: spec.parse for spec in SPECS if spec.toml_key}
    for key, raw in section.items():
        if key in parsers:
            parsers[key](raw, f"from canary.toml [stage] {key}")
    return [f"unknown key {key!r} (ignored)" for key in sorted(set(section) - set(parsers))]


def _validate_judge(section: Mapping[str, Any]) -> list[str]:
    from canary_harness.judge.settings import JudgeSettings

    JudgeSettings.from_mapping(section, "canary.toml [judge]")
    return []


def _validate_load(section: Mapping[str, Any]) -> list[str]:
    from canary_harness.load.settings import LoadSettings

    LoadSettings.from_mapping(section, "canary.toml [load]")
    return []


# The sections the harness reads, each validated by the code that reads it. Returns warnings.
SECTION_VALIDATORS: Mapping[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "stack": _validate_stack,
    "stage": _validate_stage,
    "judge": _validate_judge,
    "load": _validate_load,
}


def check_config(config_file: Path | None, root: Path) -> tuple[list[CheckResult], dict[str, Any] | None]:
    """canary.toml (the given file, else ``<root>/canary.toml`` if present) parses and its sections validate.

    Returns the results and the parsed document (None when it could not be read).
    """
    path = config_file if config_file is not None else root / "canary.toml"
    if config_file is None and not path.exists():
        return [CheckResult("config", Status.PASS, "no canary.toml: built-in defaults apply")], {}
    shown = _show(path, root)
    try:
        document = load_toml(path)
    except ConfigError as exc:
        return [CheckResult(f"config {shown}", Status.FAIL, str(exc))], None
    sections = ", ".join(document) or "none"
    results = [CheckResult(f"config {shown}", Status.PASS, f"parsed, sections: {sections}")]
    for name, section in document.items():
        check = f"config [{name}]"
        validate = SECTION_VALIDATORS.get(name)
        if validate is None:
            known = ", ".join(f"[{key}]" for key in SECTION_VALIDATORS)
            results.append(CheckResult(check, Status.WARN, f"unknown section (ignored); known: {known}"))
            continue
        if not isinstance(section, Mapping):
            results.append(CheckResult(check, Status.FAIL, f"must be a table, got {section!r}"))
            continue
        try:
            warnings = validate(section)
        except ConfigError as exc:
            results.append(CheckResult(check, Status.FAIL, str(exc)))
            continue
        if warnings:
            results.append(CheckResult(check, Status.WARN, "; ".join(warnings)))
        else:
            results.append(CheckResult(check, Status.PASS, "valid"))
    return results, document


def _find_nginx(nginx_bin: str | None) -> str | None:
    from canary_harness.traffic.nginx_process import find_nginx

    if nginx_bin:
        return shutil.which(nginx_bin)
    try:
        return find_nginx()
    except TrafficError:
        return None


def check_nginx(
    template_dir: Path, root: Path, stack: StackSettings, nginx_bin: str | None
) -> list[CheckResult]:
    """The templates exist and render at every weight; ``nginx -t`` accepts the rendered configuration."""
    from canary_harness.traffic.nginx import MAIN_TEMPLATE, UPSTREAM_TEMPLATE, NginxTrafficController
    from canary_harness.traffic.render import render_main, render_upstream

    production = f"{stack.host}:{stack.production_port}"
    canary = f"{stack.host}:{stack.canary_port}"
    main_path, upstream_path = template_dir / MAIN_TEMPLATE, template_dir / UPSTREAM_TEMPLATE
    missing = [_show(path, root) for path in (main_path, upstream_path) if not path.is_file()]
    if missing:
        return [
            CheckResult("nginx templates", Status.FAIL, f"missing: {', '.join(missing)}"),
            CheckResult("nginx -t", Status.FAIL, "not run: templates missing"),
        ]
    try:
        render_main(main_path.read_text(), listen_host=stack.host, listen_port=stack.nginx_port,
                    source=_show(main_path, root))
        template = upstream_path.read_text()
        for weight in RENDER_WEIGHTS:
            render_upstream(template, 100 - weight, weight, production=production, canary=canary,
                            source=_show(upstream_path, root))
    except TrafficError as exc:
        return [
            CheckResult("nginx templates", Status.FAIL, str(exc)),
            CheckResult("nginx -t", Status.FAIL, "not run: the templates do not render"),
        ]
    weights = "/".join(str(weight) for weight in RENDER_WEIGHTS)
    rendered = CheckResult(
        "nginx templates", Status.PASS,
        f"{_show(main_path, root)} and {_show(upstream_path, root)} render at canary {weights} %",
    )  # fmt: skip
    binary = _find_nginx(nginx_bin)
    if binary is None:
        reason = f"skipped: nginx binary {nginx_bin or 'nginx'!r} not found (apt-get install -y nginx)"
        return [rendered, CheckResult("nginx -t", Status.WARN, reason)]
    with tempfile.TemporaryDirectory(prefix="canary-precheck-") as scratch:
        controller = NginxTrafficController(
            Path(scratch) / "nginx", listen_port=stack.nginx_port, production=production, canary=canary,
            listen_host=stack.host, template_dir=template_dir, nginx_bin=binary,
        )  # fmt: skip
        try:
            # Lays out a private prefix, renders nginx.conf and the upstream, runs nginx -t on them.
            controller.prepare(canary_weight=RENDER_WEIGHTS[2])
        except TrafficError as exc:
            return [rendered, CheckResult("nginx -t", Status.FAIL, str(exc).replace(scratch, "<tmp>"))]
    return [rendered, CheckResult("nginx -t", Status.PASS, f"{binary} accepts the rendered configuration")]


def check_runbook(manifest: ReleaseManifest | None, root: Path) -> CheckResult:
    """The operator runbook the manifest names (default docs/runbook.md) exists and is not empty."""
    relative = manifest.runbook if manifest is not None else DEFAULT_RUNBOOK
    try:
        path = _inside(root, relative, "runbook")
    except ConfigError as exc:
        return CheckResult("runbook", Status.FAIL, str(exc))
    if not path.is_file():
        return CheckResult("runbook", Status.FAIL, f"not found: {relative}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not any(line.strip() for line in lines):
        return CheckResult("runbook", Status.FAIL, f"{relative} is empty")
    return CheckResult("runbook", Status.PASS, f"{relative} ({len(lines)} lines)")


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
    results: list[CheckResult] = [check_version(version)]
    release, manifest = check_release(version, root, releases)
    results.append(release)
    results.extend(check_artifacts(manifest, root))
    results.extend(check_secrets(manifest, environ))
    config_results, document = check_config(config_file, root)
    results.extend(config_results)
    section = (document or {}).get("stack", {})
    try:
        stack = resolve_stack_settings(toml={"stack": section if isinstance(section, Mapping) else {}},
                                       environ=environ)
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


def _show(path: Path, root: Path) -> str:
    """A path as the operator knows it: relative to the root when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- recording a release
def _generated(relative: Path) -> bool:
    """Files an install or a tool writes next to the source: never part of a release."""
    return relative.suffix in (".pyc", ".pyo") or any(
        part == "__pycache__" or part.endswith(".egg-info") or part.startswith(".") for part in relative.parts
    )


@dataclass(frozen=True)
class SourceTree:
    """The files of a service that make up its source archive: ``pyproject.toml`` and ``src/``."""

    directory: Path
    patterns: Sequence[str] = field(default=("pyproject.toml", "src/**/*"))

    def files(self) -> list[Path]:
        """Regular files in a stable order, without build and tool output (egg-info, caches, dot-files)."""
        found = {
            path for pattern in self.patterns for path in self.directory.glob(pattern)
            if path.is_file() and not _generated(path.relative_to(self.directory))
        }  # fmt: skip
        return sorted(found, key=lambda path: path.relative_to(self.directory).as_posix())

    def project_name(self) -> str:
        """``[project] name`` of the service's pyproject.toml."""
        where = self.directory / "pyproject.toml"
        try:
            name = load_toml(where).get("project", {}).get("name")
        except ConfigError:
            name = None
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ConfigError(f"source {str(self.directory)!r}: no valid [project] name in {where}")
        return name


def build_source_archive(tree: SourceTree, prefix: str) -> bytes:
    """A reproducible ``.tar.gz`` of the tree under ``prefix/``: same files, same bytes.

    Owners, times and modes are normalised and the gzip header carries no time, so rebuilding an
    unchanged tree yields the recorded hash again.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in tree.files():
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{prefix}/{path.relative_to(tree.directory).as_posix()}")
            info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0, 0, "", ""
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as archive:
        archive.write(raw.getvalue())
    return packed.getvalue()


def _toml_string(value: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=True)


def render_manifest(manifest: ReleaseManifest) -> str:
    """The manifest as TOML text (the format :func:`load_manifest` reads)."""
    lines = [
        f"# Release manifest of {manifest.version}, read by `canary precheck --version {manifest.version}`.",
        f"# Re-record the artifact hashes with `canary release-manifest --version {manifest.version}`.",
        f"version = {_toml_string(manifest.version)}",
        f"date = {_toml_string(manifest.date)}",
        f"notes = {_toml_string(manifest.notes)}",
        f"runbook = {_toml_string(manifest.runbook)}",
    ]
    for artifact in manifest.artifacts:
        lines += ["", "[[artifacts]]", f"path = {_toml_string(artifact.path)}",
                  f"sha256 = {_toml_string(artifact.sha256)}"]
        if artifact.description:
            lines.append(f"description = {_toml_string(artifact.description)}")
    for secret in manifest.secrets:
        lines += ["", "[[required_secrets]]", f"name = {_toml_string(secret.name)}",
                  f"required = {'true' if secret.required else 'false'}"]
        if secret.description:
            lines.append(f"description = {_toml_string(secret.description)}")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def record_release(
    version: str,
    *,
    root: Path = Path("."),
    source: str = "app",
    releases_dir: Path | None = None,
    notes: str | None = None,
    date: str | None = None,
) -> tuple[Path, ReleaseManifest]:
    """(Re)write ``releases/<version>.toml``: rebuild the source archive, re-hash every artifact.

    An existing manifest keeps its notes, date, secrets, runbook and extra artifacts unless ``notes`` or
    ``date`` are given. Everything is validated before the first byte is written. Returns the manifest
    path and what was written.
    """
    version = parse_version(version, "from --version")
    if not is_semver(version):
        raise ConfigError(f"version {version!r} (from --version): must be semver, e.g. v0.2.0")
    if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise ConfigError(f"date {date!r} (from --date): must be YYYY-MM-DD")
    root = Path(root)
    releases = Path(releases_dir) if releases_dir is not None else root / "releases"
    tree = SourceTree(_inside(root, source, "source"))
    if not (tree.directory / "pyproject.toml").is_file():
        raise ConfigError(f"source {source!r} (from --source): no pyproject.toml in {tree.directory}")
    path = manifest_path(releases, version)
    old = load_manifest(path) if path.exists() else None
    stem = f"{tree.project_name()}-{version}"
    archive_path = releases / ARTIFACTS_DIR / f"{stem}.tar.gz"
    archive_rel = _show(archive_path, root)
    if Path(archive_rel).is_absolute():
        raise ConfigError(f"releases directory {str(releases)!r}: must be inside the repository root {root}")
    archive = build_source_archive(tree, stem)
    others = [a for a in (old.artifacts if old else ()) if a.path != archive_rel]
    for artifact in others:
        other_path = _inside(root, artifact.path, "artifact")
        if not other_path.is_file():
            raise ConfigError(f"{path}: artifact {artifact.path!r} not found: fix or remove it first")
    description = f"source archive of {source}/ (pyproject.toml and src/), built by canary release-manifest"
    manifest = ReleaseManifest(
        version=version,
        date=date or (old.date if old else dt.date.today().isoformat()),
        notes=notes if notes is not None else (old.notes if old else ""),
        artifacts=(
            Artifact(archive_rel, hashlib.sha256(archive).hexdigest(), description),
            *(Artifact(a.path, sha256_of(_inside(root, a.path, "artifact")), a.description) for a in others),
        ),
        secrets=old.secrets if old else (),
        runbook=old.runbook if old else DEFAULT_RUNBOOK,
    )
    _write_atomic(archive_path, archive)
    _write_atomic(path, render_manifest(manifest).encode())
    return path, manifest

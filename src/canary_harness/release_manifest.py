"""Release manifests (``releases/<version>.toml``): their format, reading and validating one, and recording
a release (``canary release-manifest``): :func:`record_release` builds a reproducible source archive of the
service and records its hash next to the other artifacts'.

Read by ``canary precheck`` (:mod:`canary_harness.precheck`) and by the image builder
(:mod:`canary_harness.deploy.releases`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary_harness.config import load_toml, parse_version
from canary_harness.errors import ConfigError

SEMVER_RE = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_RUNBOOK = "docs/runbook.md"
ARTIFACTS_DIR = "artifacts"


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


def inside(root: Path, relative: str, what: str) -> Path:
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


def show_path(path: Path, root: Path) -> str:
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
        lines += [
            "",
            "[[artifacts]]",
            f"path = {_toml_string(artifact.path)}",
            f"sha256 = {_toml_string(artifact.sha256)}",
        ]
        if artifact.description:
            lines.append(f"description = {_toml_string(artifact.description)}")
    for secret in manifest.secrets:
        lines += [
            "",
            "[[required_secrets]]",
            f"name = {_toml_string(secret.name)}",
            f"required = {'true' if secret.required else 'false'}",
        ]
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
    tree = SourceTree(inside(root, source, "source"))
    if not (tree.directory / "pyproject.toml").is_file():
        raise ConfigError(f"source {source!r} (from --source): no pyproject.toml in {tree.directory}")
    path = manifest_path(releases, version)
    old = load_manifest(path) if path.exists() else None
    stem = f"{tree.project_name()}-{version}"
    archive_path = releases / ARTIFACTS_DIR / f"{stem}.tar.gz"
    archive_rel = show_path(archive_path, root)
    if Path(archive_rel).is_absolute():
        raise ConfigError(f"releases directory {str(releases)!r}: must be inside the repository root {root}")
    archive = build_source_archive(tree, stem)
    others = [a for a in (old.artifacts if old else ()) if a.path != archive_rel]
    for artifact in others:
        other_path = inside(root, artifact.path, "artifact")
        if not other_path.is_file():
            raise ConfigError(f"{path}: artifact {artifact.path!r} not found: fix or remove it first")
    description = f"source archive of {source}/ (pyproject.toml and src/), built by canary release-manifest"
    manifest = ReleaseManifest(
        version=version,
        date=date or (old.date if old else dt.date.today().isoformat()),
        notes=notes if notes is not None else (old.notes if old else ""),
        artifacts=(
            Artifact(archive_rel, hashlib.sha256(archive).hexdigest(), description),
            *(Artifact(a.path, sha256_of(inside(root, a.path, "artifact")), a.description) for a in others),
        ),
        secrets=old.secrets if old else (),
        runbook=old.runbook if old else DEFAULT_RUNBOOK,
    )
    _write_atomic(archive_path, archive)
    _write_atomic(path, render_manifest(manifest).encode())
    return path, manifest

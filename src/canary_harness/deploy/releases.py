"""The releases an image is built from: ``releases/<version>.toml`` and its source archive
``releases/artifacts/fragrance-ai-<version>.tar.gz``, verified against the manifest's SHA-256.

Only reads files. The manifest format itself belongs to :mod:`canary_harness.release_manifest`; this module picks
the archive of a release out of it, refuses an archive whose bytes changed, and reads the dependencies
the archive's own ``pyproject.toml`` declares (so an image is made from the release, not the work tree).
"""

from __future__ import annotations

import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from canary_harness.config import parse_version
from canary_harness.errors import ConfigError
from canary_harness.release_manifest import ARTIFACTS_DIR, load_manifest, manifest_path, sha256_of

SERVICE_NAME = "fragrance-ai"


def archive_name(version: str) -> str:
    """File name of a release's source archive, e.g. ``fragrance-ai-v0.2.0.tar.gz``."""
    return f"{SERVICE_NAME}-{version}.tar.gz"


@dataclass(frozen=True)
class Release:
    """A release whose archive was found and hashed.

    Args:
        version: the release label, e.g. ``v0.2.0``.
        manifest: path of ``<version>.toml``.
        archive: path of the source archive.
        expected_sha256: the hash the manifest records for the archive.
        actual_sha256: the hash of the archive's bytes now.
    """

    version: str
    manifest: Path
    archive: Path
    expected_sha256: str
    actual_sha256: str

    def verify(self) -> None:
        """Refuse (ConfigError naming file, expected and actual hash) an archive that changed."""
        if self.actual_sha256 != self.expected_sha256:
            raise ConfigError(
                f"artifact {self.archive} (recorded in {self.manifest}): sha256 mismatch: expected "
                f"{self.expected_sha256}, actual {self.actual_sha256}; refusing to build {self.version}"
            )


def known_versions(releases_dir: Path) -> list[str]:
    """Versions with a manifest in ``releases_dir``, oldest first by (numeric) version."""
    return sorted((path.stem for path in Path(releases_dir).glob("*.toml")), key=version_key)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key: numeric parts compare as numbers (v0.10.0 after v0.9.0)."""
    parts = version.lstrip("v").replace("-", ".").replace("+", ".").split(".")
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts)


def load_release(releases_dir: Path, version: str) -> Release:
    """Find ``version`` in ``releases_dir`` and hash its archive (not yet compared: see ``verify``).

    Unknown version: ConfigError naming the directory and the versions it holds.
    """
    releases_dir = Path(releases_dir)
    version = parse_version(version, "from --version")
    path = manifest_path(releases_dir, version)
    if not path.is_file():
        known = ", ".join(known_versions(releases_dir)) or "none"
        raise ConfigError(f"version {version!r}: no release manifest {path}; {releases_dir}/ holds: {known}")
    manifest = load_manifest(path)
    name = archive_name(version)
    # Matched by file name, so a copy of the releases directory elsewhere (tests, CI) works the same.
    recorded = [artifact for artifact in manifest.artifacts if Path(artifact.path).name == name]
    if not recorded:
        raise ConfigError(f"release manifest {path}: no [[artifacts]] entry for {name}")
    archive = releases_dir / ARTIFACTS_DIR / name
    if not archive.is_file():
        raise ConfigError(f"release {version}: artifact {archive} (recorded in {path}) not found")
    return Release(version, path, archive, recorded[0].sha256, sha256_of(archive))


def archive_dependencies(archive: Path) -> list[str]:
    """The ``[project] dependencies`` of the archive's top-level ``pyproject.toml``."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.count("/") == 1
                       and m.name.endswith("/pyproject.toml")]  # fmt: skip
            if not members:
                raise ConfigError(f"artifact {archive}: no <name>/pyproject.toml at its top level")
            handle = tar.extractfile(members[0])
            assert handle is not None  # a regular file member always has content
            data = tomllib.loads(handle.read().decode())
    except (OSError, tarfile.TarError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"artifact {archive}: cannot read its pyproject.toml: {exc}") from exc
    dependencies = data.get("project", {}).get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(item, str) for item in dependencies):
        raise ConfigError(f"artifact {archive}: [project] dependencies must be a list of strings")
    return dependencies

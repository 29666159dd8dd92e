"""The wheels an image installs, made on the host (the image build itself never reaches an index).

Dependencies are downloaded once for the image's platform (CPython 3.11, manylinux2014 x86_64) into a
shared cache and the resolved set is remembered per requirement list, so a later build of any release
with the same dependencies runs no pip at all. The release's own wheel is built with ``pip wheel
--no-deps`` from its source archive and cached by the archive's SHA-256: the same archive always gives
the same wheel bytes, hence the same image content hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from canary_harness.errors import ImageError

# The platform of the base image (Debian's CPython 3.11 on x86_64): what `pip download` resolves for.
PYTHON_VERSION = "3.11"
# The base image's exact interpreter (Debian 12's python3, copied from the host): pip download evaluates a
# dependency's environment markers with the interpreter that runs pip, so markers such as redis's
# ``async-timeout; python_full_version < "3.11.3"`` are re-evaluated for this version (``marker_requirements``).
IMAGE_PYTHON_FULL_VERSION = "3.11.2"
PLATFORM = "manylinux2014_x86_64"
IMPLEMENTATION = "cp"
PIP_TIMEOUT_S = 600.0


def default_cache_dir() -> Path:
    """``$CANARY_WHEEL_CACHE``, else ``$XDG_CACHE_HOME/canary-harness/wheels`` (``~/.cache`` by default)."""
    explicit = os.environ.get("CANARY_WHEEL_CACHE", "").strip()
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "canary-harness" / "wheels"


@dataclass(frozen=True)
class WheelSet:
    """The wheel files one image installs: the release's own wheel and its dependencies."""

    own: Path
    dependencies: tuple[Path, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        """Every wheel, the release's own first, then the dependencies by name."""
        return (self.own, *sorted(self.dependencies, key=lambda path: path.name))

    def fingerprint(self) -> list[tuple[str, str]]:
        """(file name, SHA-256) of every wheel, sorted by name: what the image content hash covers."""
        return sorted((path.name, _sha256(path)) for path in self.files)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _pip(args: Sequence[str], what: str) -> None:
    """Run ``python -m pip ARGS``; ImageError with the command and pip's last lines on failure."""
    command = [sys.executable, "-m", "pip", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(f"{what}: {' '.join(command)} did not complete: {exc}") from exc
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        last = "\n".join(lines[-12:])
        raise ImageError(f"{what}: {' '.join(command)} exited {result.returncode}; last lines:\n{last}")


def requirements_key(requirements: Sequence[str]) -> str:
    """Cache key of a dependency list for the image platform (order and duplicates do not matter)."""
    payload = json.dumps([sorted(set(requirements)), IMAGE_PYTHON_FULL_VERSION, PLATFORM, IMPLEMENTATION])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def marker_requirements(wheels: Iterable[Path]) -> list[str]:
    """Requirements of ``wheels`` whose markers hold on the image's interpreter and that no wheel among them
    satisfies by name: what ``pip download`` (evaluating markers on the host's Python) left out."""
    environment: dict[str, str] = {str(key): str(value) for key, value in default_environment().items()}
    environment.update(python_version=PYTHON_VERSION, python_full_version=IMAGE_PYTHON_FULL_VERSION,
                       implementation_name="cpython", platform_python_implementation="CPython", sys_platform="linux",
                       platform_system="Linux", platform_machine="x86_64", os_name="posix", extra="")  # fmt: skip
    wheels = list(wheels)
    present = {canonicalize_name(path.name.split("-", 1)[0]) for path in wheels}
    missing: dict[str, str] = {}
    for path in wheels:
        for line in _requires_dist(path):
            try:
                requirement = Requirement(line)
            except InvalidRequirement as exc:
                raise ImageError(f"wheel {path.name}: unreadable Requires-Dist {line!r}: {exc}") from exc
            name = canonicalize_name(requirement.name)
            if requirement.marker is None or name in present or name in missing:
                continue
            if requirement.marker.evaluate(environment):
                requirement.marker = None
                missing[name] = str(requirement)
    return [missing[name] for name in sorted(missing)]


def _requires_dist(wheel: Path) -> list[str]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            text = archive.read(metadata).decode()
    except (OSError, zipfile.BadZipFile, StopIteration, UnicodeDecodeError) as exc:
        raise ImageError(f"wheel {wheel}: cannot read its METADATA: {exc!r}") from exc
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def dependency_wheels(requirements: Sequence[str], cache_dir: Path) -> tuple[Path, ...]:
    """The dependency wheels for ``requirements``, downloaded into ``cache_dir`` the first time only."""
    store = cache_dir / "deps"
    record = cache_dir / "sets" / f"{requirements_key(requirements)}.json"
    if record.is_file():
        names = json.loads(record.read_text())
        if all((store / name).is_file() for name in names):
            return tuple(store / name for name in names)
    if not requirements:
        return ()
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="canary-wheels-") as tmp:
        # A fresh destination tells exactly which files make the set; wheels already cached are found
        # through --find-links instead of being fetched again.
        wanted = list(requirements)
        while wanted:  # a marker-only dependency may itself have some: until none is missing
            _pip(["download", "--quiet", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                  "--platform", PLATFORM, "--implementation", IMPLEMENTATION, "--find-links", str(store),
                  "--dest", tmp, *wanted], "downloading the dependency wheels")  # fmt: skip
            wanted = marker_requirements(Path(tmp).glob("*.whl"))
        names = sorted(path.name for path in Path(tmp).glob("*.whl"))
        for name in names:
            if not (store / name).exists():
                shutil.move(str(Path(tmp) / name), store / name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(names))
    return tuple(store / name for name in names)


def own_wheel(archive: Path, archive_sha256: str, cache_dir: Path) -> Path:
    """The release's wheel, built from its source archive once per archive hash."""
    dest = cache_dir / "releases" / archive_sha256
    found = sorted(dest.glob("*.whl"))
    if len(found) == 1:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="canary-own-wheel-") as tmp:
        _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, str(archive)], f"building the wheel of {archive}")
        built = sorted(Path(tmp).glob("*.whl"))
        if len(built) != 1:
            raise ImageError(f"building the wheel of {archive}: expected one wheel, got {[p.name for p in built]}")
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.iterdir():
            stale.unlink()
        target = dest / built[0].name
        shutil.move(str(built[0]), target)
    return target


def copy_wheels(wheels: WheelSet, directory: Path) -> None:
    """Make ``directory`` hold exactly these wheels (other ``*.whl`` files are removed)."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {path.name for path in wheels.files}
    for existing in directory.glob("*.whl"):
        if existing.name not in wanted:
            existing.unlink()
    for path in wheels.files:
        target = directory / path.name
        if not target.exists() or target.stat().st_size != path.stat().st_size or _sha256(target) != _sha256(path):
            shutil.copyfile(path, target)

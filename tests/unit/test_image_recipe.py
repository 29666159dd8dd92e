"""The pure parts of `canary images build`: release lookup and artifact verification, the archive's own
dependencies, the content hash, the wheel-set bookkeeping. No Docker engine needed."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from canary_harness.cli import main
from canary_harness.deploy.images import content_hash, image_tag
from canary_harness.deploy.releases import archive_dependencies, known_versions, load_release, version_key
from canary_harness.deploy.wheels import WheelSet, copy_wheels, requirements_key
from canary_harness.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def releases(tmp_path: Path) -> Path:
    """A copy of the repository's releases/ directory, free to tamper with."""
    target = tmp_path / "releases"
    shutil.copytree(REPO / "releases", target)
    return target


WHEELS = [("x-1.0-py3-none-any.whl", "c" * 64), ("fragrance_ai-0.2.0-py3-none-any.whl", "d" * 64)]


def _hash(**overrides: Any) -> str:
    """The content hash of a fixed set of inputs, with some of them replaced."""
    inputs: dict[str, Any] = {
        "version": "v0.2.0",
        "artifact_sha256": "a" * 64,
        "recipe": {"Dockerfile": b"FROM base\n", "healthcheck.py": b"print()\n"},
        "base_image_id": "sha256:" + "b" * 64,
        "wheels": WHEELS,
    }
    inputs.update(overrides)
    return content_hash(**inputs)


def test_the_repository_releases_load_and_verify(releases: Path) -> None:
    assert known_versions(releases) == ["v0.1.0", "v0.2.0"]
    release = load_release(releases, "v0.2.0")
    assert release.archive == releases / "artifacts" / "fragrance-ai-v0.2.0.tar.gz"
    assert release.actual_sha256 == hashlib.sha256(release.archive.read_bytes()).hexdigest()
    release.verify()  # the shipped archive matches its manifest


def test_a_tampered_archive_is_refused_naming_file_expected_and_actual(releases: Path) -> None:
    archive = releases / "artifacts" / "fragrance-ai-v0.2.0.tar.gz"
    expected = load_release(releases, "v0.2.0").expected_sha256
    archive.write_bytes(archive.read_bytes() + b"tampered")
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ConfigError) as caught:
        load_release(releases, "v0.2.0").verify()
    message = str(caught.value)
    assert str(archive) in message and expected in message and actual in message
    assert "sha256 mismatch" in message


def test_an_unknown_version_names_the_directory_and_the_known_versions(releases: Path) -> None:
    with pytest.raises(ConfigError, match=r"'v9\.9\.9'.*holds: v0\.1\.0, v0\.2\.0") as caught:
        load_release(releases, "v9.9.9")
    assert str(releases) in str(caught.value)


def test_a_manifest_without_the_archive_entry_is_refused(releases: Path) -> None:
    manifest = releases / "v0.2.0.toml"
    manifest.write_text(manifest.read_text().replace("fragrance-ai-v0.2.0.tar.gz", "other.tar.gz"))
    with pytest.raises(ConfigError, match="no \\[\\[artifacts\\]\\] entry for fragrance-ai-v0.2.0.tar.gz"):
        load_release(releases, "v0.2.0")


def test_a_missing_archive_is_refused(releases: Path) -> None:
    (releases / "artifacts" / "fragrance-ai-v0.1.0.tar.gz").unlink()
    with pytest.raises(ConfigError, match="fragrance-ai-v0.1.0.tar.gz .*not found"):
        load_release(releases, "v0.1.0")


def test_a_version_with_shell_characters_is_refused_before_any_lookup(releases: Path) -> None:
    with pytest.raises(ConfigError, match="from --version"):
        load_release(releases, "v1; rm -rf /")


def test_dependencies_come_from_the_archive_not_the_work_tree(releases: Path) -> None:
    deps = archive_dependencies(releases / "artifacts" / "fragrance-ai-v0.2.0.tar.gz")
    assert "fastapi>=0.110" in deps and "uvicorn>=0.29" in deps
    # An archive with other dependencies gives those.
    pyproject = b'[project]\nname = "x"\ndependencies = ["only-this==1.0"]\n'
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("x-v1/pyproject.toml")
        info.size = len(pyproject)
        tar.addfile(info, io.BytesIO(pyproject))
    archive = releases / "x.tar.gz"
    archive.write_bytes(raw.getvalue())
    assert archive_dependencies(archive) == ["only-this==1.0"]


def test_an_archive_without_pyproject_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tar.gz"
    with tarfile.open(archive, mode="w:gz"):
        pass
    with pytest.raises(ConfigError, match="no <name>/pyproject.toml"):
        archive_dependencies(archive)


def test_versions_sort_numerically() -> None:
    assert sorted(["v0.10.0", "v0.9.1", "v0.9.0"], key=version_key) == ["v0.9.0", "v0.9.1", "v0.10.0"]


def test_content_hash_is_stable_and_ignores_wheel_order() -> None:
    first = _hash()
    assert _hash() == first
    assert _hash(wheels=list(reversed(WHEELS))) == first
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"version": "v0.2.1"},
        {"artifact_sha256": "e" * 64},
        {"recipe": {"Dockerfile": b"FROM base\nUSER 1\n", "healthcheck.py": b"print()\n"}},
        {"recipe": {"Dockerfile": b"FROM base\n", "healthcheck.py": b"print(1)\n"}},
        {"base_image_id": "sha256:" + "f" * 64},
        {"wheels": [("x-1.0-py3-none-any.whl", "0" * 64)]},
    ],
    ids=["version", "artifact", "dockerfile", "healthcheck", "base-image", "wheels"],
)
def test_content_hash_changes_with_every_input(change: dict[str, Any]) -> None:
    assert _hash(**change) != _hash()


def test_image_tag_is_the_runbook_name() -> None:
    assert image_tag("v0.2.0") == "fragrance-ai-app:v0.2.0"


def test_requirements_key_ignores_order_and_duplicates() -> None:
    assert requirements_key(["a>=1", "b"]) == requirements_key(["b", "a>=1", "b"])
    assert requirements_key(["a>=1"]) != requirements_key(["a>=2"])


def test_wheel_set_fingerprint_and_copy(tmp_path: Path) -> None:
    own = tmp_path / "own" / "app-1.0-py3-none-any.whl"
    dep = tmp_path / "deps" / "dep-2.0-py3-none-any.whl"
    for path, data in ((own, b"own"), (dep, b"dep")):
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    wheels = WheelSet(own, (dep,))
    assert wheels.fingerprint() == [
        ("app-1.0-py3-none-any.whl", hashlib.sha256(b"own").hexdigest()),
        ("dep-2.0-py3-none-any.whl", hashlib.sha256(b"dep").hexdigest()),
    ]
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale-0.1-py3-none-any.whl").write_bytes(b"old")
    (out / "README").write_text("kept: not a wheel")
    copy_wheels(wheels, out)
    assert sorted(path.name for path in out.iterdir()) == [
        "README", "app-1.0-py3-none-any.whl", "dep-2.0-py3-none-any.whl",
    ]  # fmt: skip
    assert (out / "app-1.0-py3-none-any.whl").read_bytes() == b"own"


def test_cli_refuses_an_unknown_version_with_exit_2(releases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images", "build", "--releases-dir", str(releases), "--version", "v9.9.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "v9.9.9" in err and str(releases) in err and "v0.1.0, v0.2.0" in err


def test_cli_refuses_a_tampered_archive_before_touching_docker(
    releases: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An engine that cannot exist: the refusal must come before any connection attempt.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    archive = releases / "artifacts" / "fragrance-ai-v0.1.0.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-1])
    assert main(["images", "build", "--releases-dir", str(releases)]) == 2
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and str(archive) in err and "docker-up.sh" not in err


def _wheel(directory: Path, name: str, requires: list[str]) -> Path:
    """A minimal wheel whose METADATA lists ``requires``."""
    import zipfile

    path = directory / f"{name}-1.0-py3-none-any.whl"
    metadata = "Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\n"
    metadata += "".join(f"Requires-Dist: {line}\n" for line in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-1.0.dist-info/METADATA", metadata)
    return path


def test_marker_requirements_are_evaluated_for_the_image_python(tmp_path: Path) -> None:
    from canary_harness.deploy.wheels import marker_requirements

    redis = _wheel(tmp_path, "redis", [
        'async-timeout>=4.0.3; python_full_version < "3.11.3"',  # holds on the image's 3.11.2
        'hiredis>=3; extra == "hiredis"',                          # an extra: never
        'typing-extensions; python_version < "3.8"',              # not on 3.11
        "packaging",                                               # no marker: pip already resolved it
    ])  # fmt: skip
    assert marker_requirements([redis]) == ["async-timeout>=4.0.3"]
    # Once the wheel is among them, nothing is missing.
    assert marker_requirements([redis, _wheel(tmp_path, "async_timeout", [])]) == []

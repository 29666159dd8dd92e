"""`canary precheck` and `canary release-manifest`: the repository's real release files pass; each broken
input fails the check it belongs to, with its reason; secret values never appear; nothing is written."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.errors import ConfigError
from canary_harness.precheck import ChecklistItem, PrecheckReport, Status, run_precheck
from canary_harness.release_manifest import is_semver, load_manifest, record_release
from canary_harness.traffic.nginx_process import find_nginx

REPO = Path(__file__).resolve().parents[2]
VERSION = "v0.2.0"
# Keeps the tests that are not about NGINX free of the binary (the nginx -t row is then a WARN).
NO_NGINX = "/nonexistent/nginx"


def _has_nginx() -> bool:
    try:
        find_nginx()
    except Exception:
        return False
    return True


def by_name(report: PrecheckReport) -> dict[str, ChecklistItem]:
    """The results keyed by check name (each name appears once in these tests)."""
    results = {result.name: result for result in report.results}
    assert len(results) == len(report.results), [result.name for result in report.results]
    return results


def precheck(root: Path, version: str = VERSION, **kwargs: object) -> PrecheckReport:
    """Run precheck on ``root`` with a clean environment unless one is given, and without nginx."""
    kwargs.setdefault("environ", {})
    kwargs.setdefault("nginx_bin", NO_NGINX)
    return run_precheck(version, root=root, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository files precheck reads: releases/, nginx/ and the runbook."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "releases", root / "releases")
    shutil.copytree(REPO / "nginx", root / "nginx")
    (root / "docs").mkdir()
    shutil.copyfile(REPO / "docs" / "runbook.md", root / "docs" / "runbook.md")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }  # fmt: skip


# --------------------------------------------------------------------------- the real files
@pytest.mark.integration
@pytest.mark.parametrize("version", ["v0.1.0", "v0.2.0"])
def test_the_repository_release_passes_strict(version: str) -> None:
    report = run_precheck(version, root=REPO, environ={"OPENAI_API_KEY": "set-for-the-test"})
    results = by_name(report)
    expected = {
        "version",
        "release",
        f"artifact fragrance-ai-{version}.tar.gz",
        "secret OPENAI_API_KEY",
        "nginx templates",
        "nginx -t",
        "runbook",
    }
    assert expected <= set(results)
    if not _has_nginx():
        assert results["nginx -t"].status is Status.WARN and "skipped" in results["nginx -t"].reason
        expected.discard("nginx -t")
    for name in expected:
        assert results[name].status is Status.PASS, results[name]
    assert not [result for result in report.results if result.status is Status.FAIL]
    assert "matches" in results[f"artifact fragrance-ai-{version}.tar.gz"].reason


def test_copy_passes_and_optional_secret_only_warns(repo: Path) -> None:
    report = precheck(repo)
    results = by_name(report)
    assert results["secret OPENAI_API_KEY"].status is Status.WARN
    assert "optional, not set" in results["secret OPENAI_API_KEY"].reason
    assert report.ok() and not report.ok(strict=True)
    statuses = {name: result.status for name, result in results.items()}
    assert [name for name, status in statuses.items() if status is not Status.PASS] == [
        "secret OPENAI_API_KEY",
        "nginx -t",
    ]


# --------------------------------------------------------------------------- each failure
def test_missing_manifest_fails_the_release_check(repo: Path) -> None:
    (repo / "releases" / f"{VERSION}.toml").unlink()
    results = by_name(precheck(repo))
    assert results["release"].status is Status.FAIL
    expected = f"no release manifest releases/{VERSION}.toml and no git tag {VERSION}"
    assert results["release"].reason == expected
    assert results["artifacts"].status is Status.WARN


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_a_git_tag_stands_in_for_a_missing_manifest(repo: Path) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "release"], check=True)
    subprocess.run([*git, "tag", "v0.3.0"], check=True)
    results = by_name(precheck(repo, "v0.3.0"))
    assert results["release"].status is Status.PASS and "git tag v0.3.0" in results["release"].reason
    assert results["artifacts"].status is Status.WARN
    assert by_name(precheck(repo, "v0.4.0"))["release"].status is Status.FAIL


def test_manifest_declaring_another_version_fails(repo: Path) -> None:
    shutil.copyfile(repo / "releases" / "v0.1.0.toml", repo / "releases" / "v0.3.0.toml")
    result = by_name(precheck(repo, "v0.3.0"))["release"]
    assert result.status is Status.FAIL and "declares version 'v0.1.0', not 'v0.3.0'" in result.reason


def test_malformed_manifest_names_the_key(repo: Path) -> None:
    path = repo / "releases" / f"{VERSION}.toml"
    path.write_text(path.read_text().replace('sha256 = "', 'sha256 = "zz'))
    result = by_name(precheck(repo))["release"]
    assert result.status is Status.FAIL
    assert "artifacts[0]" in result.reason and "is not 64 hex digits" in result.reason


def test_tampered_artifact_fails_its_check(repo: Path) -> None:
    artifact = repo / "releases" / "artifacts" / f"fragrance-ai-{VERSION}.tar.gz"
    with artifact.open("ab") as handle:
        handle.write(b"\0")
    report = precheck(repo)
    result = by_name(report)[f"artifact fragrance-ai-{VERSION}.tar.gz"]
    assert result.status is Status.FAIL and result.reason.startswith("sha256 mismatch: recorded ")
    assert not report.ok()


def test_missing_artifact_fails(repo: Path) -> None:
    (repo / "releases" / "artifacts" / f"fragrance-ai-{VERSION}.tar.gz").unlink()
    result = by_name(precheck(repo))[f"artifact fragrance-ai-{VERSION}.tar.gz"]
    assert result.status is Status.FAIL
    assert result.reason == f"not found: releases/artifacts/fragrance-ai-{VERSION}.tar.gz"


def test_artifact_outside_the_root_is_refused(repo: Path) -> None:
    (repo.parent / "outside.txt").write_text("x")
    path = repo / "releases" / f"{VERSION}.toml"
    text = path.read_text().replace(
        f'path = "releases/artifacts/fragrance-ai-{VERSION}.tar.gz"', 'path = "../outside.txt"'
    )
    path.write_text(text)
    result = by_name(precheck(repo))["artifact outside.txt"]
    assert result.status is Status.FAIL and "leaves the repository root" in result.reason


def _require_secret(repo: Path, name: str) -> None:
    path = repo / "releases" / f"{VERSION}.toml"
    path.write_text(path.read_text() + f'\n[[required_secrets]]\nname = "{name}"\nrequired = true\n')


def test_missing_required_secret_fails(repo: Path) -> None:
    _require_secret(repo, "FRAGRANCE_DEPLOY_TOKEN")
    report = precheck(repo)
    result = by_name(report)["secret FRAGRANCE_DEPLOY_TOKEN"]
    assert result.status is Status.FAIL and result.reason == "required, not set in the environment"
    assert not report.ok()
    blank = precheck(repo, environ={"FRAGRANCE_DEPLOY_TOKEN": "   "})
    assert by_name(blank)["secret FRAGRANCE_DEPLOY_TOKEN"].status is Status.FAIL
    present = precheck(repo, environ={"FRAGRANCE_DEPLOY_TOKEN": "t0k3n"})
    assert by_name(present)["secret FRAGRANCE_DEPLOY_TOKEN"] == ChecklistItem(
        "secret FRAGRANCE_DEPLOY_TOKEN", Status.PASS, "set"
    )


def test_secret_values_never_appear_in_the_output(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_secret(repo, "FRAGRANCE_DEPLOY_TOKEN")
    values = {"FRAGRANCE_DEPLOY_TOKEN": "s3cr3t-deploy-7f1c9a", "OPENAI_API_KEY": "sk-live-0d8e2b44aa"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    code = main(["precheck", "--version", VERSION, "--root", str(repo), "--strict", "--nginx-bin", NO_NGINX])
    out, err = capsys.readouterr()
    assert "secret FRAGRANCE_DEPLOY_TOKEN" in out and "secret OPENAI_API_KEY" in out
    for value in values.values():
        assert value not in out and value not in err
    assert code == 1  # only the skipped nginx -t warns, and --strict counts it


def test_bad_canary_toml_fails_the_config_check(repo: Path) -> None:
    (repo / "canary.toml").write_text("[stack\nnginx_port = 1\n")
    result = by_name(precheck(repo))["config canary.toml"]
    assert result.status is Status.FAIL and "invalid TOML" in result.reason


RATIO = """[[judge.ratios]]
name = "failed"
numerator = 'o_total{s="f"}'
denominator = "o_total"
max = 0.01
"""


@pytest.mark.parametrize(
    ("text", "section", "status", "reason"),
    [
        ('[stack]\nnginx_port = "eighty"\n', "config [stack]", Status.FAIL, "port 'eighty'"),
        ("[stack]\nnginx_port = 18080\ncolour = 1\n", "config [stack]", Status.FAIL, "unknown [stack] key 'colour'"),
        ("[stage]\nobservation_period = -5\n", "config [stage]", Status.FAIL, "value -5"),
        ("[judge]\nno_such_setting = 1\n", "config [judge]", Status.FAIL, "unknown judge setting 'no_such_setting'"),
        ("[load]\nno_such_setting = 1\n", "config [load]", Status.FAIL, "no_such_setting"),
        ("[grafana]\nurl = 'x'\n", "config [grafana]", Status.WARN, "unknown section"),
        ("stack = 3\n", "config [stack]", Status.FAIL, "must be a table"),
        ("[stack]\nnginx_port = 18080\n[stage]\njudge = 'fixed'\n", "config [stage]", Status.PASS, "valid"),
        (RATIO + '[metrics]\ncounters = "none"\n', "config [[judge.ratios]]", Status.FAIL, 'counters = "none"'),
        (RATIO, "config [[judge.ratios]]", Status.PASS, "1 ratio check(s)"),
    ],
)
def test_canary_toml_sections_are_validated(repo: Path, text: str, section: str, status: Status, reason: str) -> None:
    (repo / "canary.toml").write_text(text)
    report = precheck(repo)
    results = by_name(report)
    assert results["config canary.toml"].status is Status.PASS
    assert results[section].status is status, results[section]
    assert reason in results[section].reason
    assert report.ok(strict=False) is (status is not Status.FAIL)


def test_explicit_config_file_that_does_not_exist_fails(repo: Path) -> None:
    missing = repo / "nope.toml"
    result = by_name(precheck(repo, config_file=missing))["config nope.toml"]
    assert result.status is Status.FAIL and "not found" in result.reason


def test_missing_runbook_fails(repo: Path) -> None:
    (repo / "docs" / "runbook.md").unlink()
    result = by_name(precheck(repo))["runbook"]
    assert result == ChecklistItem("runbook", Status.FAIL, "not found: docs/runbook.md")


def test_empty_runbook_fails(repo: Path) -> None:
    (repo / "docs" / "runbook.md").write_text("\n  \n")
    assert by_name(precheck(repo))["runbook"].status is Status.FAIL


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        # The placeholder is gone altogether.
        (
            lambda text: text.replace("weight=${CANARY_WEIGHT} ", "").replace('"${CANARY_WEIGHT}"', '"0"'),
            "${CANARY_WEIGHT} missing from the template",
        ),
        # Still present elsewhere, but the canary's server line carries a fixed weight.
        (lambda text: text.replace("weight=${CANARY_WEIGHT} ", "weight=1 "), "rendered weights"),
    ],
)
def test_template_that_cannot_carry_the_weights_fails(repo: Path, edit: Callable[[str], str], reason: str) -> None:
    template = repo / "nginx" / "conf.d" / "upstream.conf.template"
    template.write_text(edit(template.read_text()))
    results = by_name(precheck(repo))
    assert results["nginx templates"].status is Status.FAIL
    assert reason in results["nginx templates"].reason
    assert results["nginx -t"].status is Status.FAIL


def test_missing_template_fails(repo: Path) -> None:
    (repo / "nginx" / "nginx.canary.conf").unlink()
    result = by_name(precheck(repo))["nginx templates"]
    assert result.status is Status.FAIL and "nginx/nginx.canary.conf" in result.reason


def test_without_the_nginx_binary_nginx_t_is_skipped_as_a_warning(repo: Path) -> None:
    result = by_name(precheck(repo, nginx_bin=NO_NGINX))["nginx -t"]
    assert result.status is Status.WARN and "skipped" in result.reason and NO_NGINX in result.reason


@pytest.mark.integration
@pytest.mark.skipif(not _has_nginx(), reason="nginx not installed")
def test_nginx_t_rejects_a_broken_main_config(repo: Path) -> None:
    main_conf = repo / "nginx" / "nginx.canary.conf"
    text = main_conf.read_text().replace("server_tokens off;", "server_tokens off;\n    bogus_directive on;")
    main_conf.write_text(text)
    results = by_name(precheck(repo, nginx_bin=None))
    assert results["nginx templates"].status is Status.PASS
    assert results["nginx -t"].status is Status.FAIL and "bogus_directive" in results["nginx -t"].reason


# --------------------------------------------------------------------------- the command
def test_strict_turns_warnings_into_exit_1(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ["precheck", "--version", VERSION, "--root", str(repo), "--nginx-bin", NO_NGINX]
    assert main(args) == 0
    assert "ready (--strict would fail on the warnings)" in capsys.readouterr().out
    assert main([*args, "--strict"]) == 1
    assert "NOT ready: warnings count as failures with --strict" in capsys.readouterr().out


def test_a_failure_exits_1_and_prints_the_table(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "docs" / "runbook.md").unlink()
    code = main(["precheck", "--version", VERSION, "--root", str(repo), "--nginx-bin", NO_NGINX])
    out = capsys.readouterr().out
    assert code == 1
    assert any(line.split()[:2] == ["runbook", "FAIL"] for line in out.splitlines())
    assert "1 failed: NOT ready" in out


@pytest.mark.parametrize("bad", ["v1; rm -rf /", "", "v0.2.0 extra", "$(id)"])
def test_unsafe_version_exits_2_naming_it(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["precheck", "--version", bad]) == 2
    out, err = capsys.readouterr()
    assert repr(bad) in err and "from --version" in err
    assert out == ""


def test_not_semver_is_a_failed_check(repo: Path) -> None:
    result = by_name(precheck(repo, "v1.2"))["version"]
    assert result.status is Status.FAIL and "not semver" in result.reason


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("v0.2.0", True),
        ("v10.0.1-rc.1", True),
        ("v1.0.0+build.5", True),
        ("0.2.0", False),
        ("v1.2", False),
        ("v01.2.3", False),
        ("v1.2.3-", False),
        ("v1.2.3-01", False),
    ],
)
def test_semver_rules(version: str, ok: bool) -> None:
    assert is_semver(version) is ok


def test_precheck_writes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "canary.toml").write_text("[stack]\nnginx_port = 18080\n")
    before = snapshot(repo)
    main(["precheck", "--version", VERSION, "--root", str(repo), "--nginx-bin", NO_NGINX])
    main(["precheck", "--version", "v9.9.9", "--root", str(repo), "--nginx-bin", NO_NGINX])
    capsys.readouterr()
    assert snapshot(repo) == before


# --------------------------------------------------------------------------- recording a release
@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A repository root holding a tiny service in app/, with the clutter an editable install leaves."""
    root = tmp_path / "svc"
    package = root / "app" / "src" / "demo_svc"
    package.mkdir(parents=True)
    (root / "app" / "pyproject.toml").write_text('[project]\nname = "demo-svc"\nversion = "1.0.0"\n')
    (package / "__init__.py").write_text('"""demo"""\n')
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0\1")
    (root / "app" / "src" / "demo_svc.egg-info").mkdir()
    (root / "app" / "src" / "demo_svc.egg-info" / "PKG-INFO").write_text("Name: demo-svc\n")
    (root / "docs").mkdir()
    (root / "docs" / "runbook.md").write_text("# Runbook\n")
    return root


def test_record_release_writes_a_manifest_precheck_accepts(service: Path) -> None:
    path, manifest = record_release("v1.0.0", root=service, notes="first", date="2026-01-02")
    assert path == service / "releases" / "v1.0.0.toml"
    assert load_manifest(path) == manifest
    archive = service / "releases" / "artifacts" / "demo-svc-v1.0.0.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names == ["demo-svc-v1.0.0/pyproject.toml", "demo-svc-v1.0.0/src/demo_svc/__init__.py"]
    result = by_name(precheck(service, "v1.0.0"))["artifact demo-svc-v1.0.0.tar.gz"]
    assert result.status is Status.PASS


def test_record_release_is_reproducible_and_tracks_source_changes(service: Path) -> None:
    path, first = record_release("v1.0.0", root=service, notes="first", date="2026-01-02")
    first_bytes = path.read_bytes()
    os.utime(service / "app" / "pyproject.toml", (1, 1))  # times do not enter the archive
    _, again = record_release("v1.0.0", root=service)
    assert path.read_bytes() == first_bytes and again == first
    (service / "app" / "src" / "demo_svc" / "__init__.py").write_text('"""changed"""\n')
    _, changed = record_release("v1.0.0", root=service)
    assert changed.artifacts[0].sha256 != first.artifacts[0].sha256
    assert changed.notes == "first" and changed.date == "2026-01-02"


def test_record_release_keeps_secrets_and_runbook(service: Path) -> None:
    path, _ = record_release("v1.0.0", root=service)
    path.write_text(
        path.read_text().replace('runbook = "docs/runbook.md"', 'runbook = "docs/ops.md"')
        + '\n[[required_secrets]]\nname = "API_TOKEN"\nrequired = true\n'
    )
    _, kept = record_release("v1.0.0", root=service)
    assert kept.runbook == "docs/ops.md"
    assert [(secret.name, secret.required) for secret in kept.secrets] == [("API_TOKEN", True)]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--version", "v1.0"], "'v1.0'"),
        (["--version", "v1.0.0", "--date", "2nd of May"], "'2nd of May'"),
        (["--version", "v1.0.0", "--source", "nowhere"], "'nowhere'"),
        (["--version", "v1.0.0", "--source", "../.."], "'../..'"),
    ],
)
def test_release_manifest_refuses_bad_input_and_writes_nothing(
    service: Path, args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(service)
    assert main(["release-manifest", "--root", str(service), *args]) == 2
    assert named in capsys.readouterr().err
    assert snapshot(service) == before


def test_record_release_rejects_a_version_label_with_shell_characters(service: Path) -> None:
    with pytest.raises(ConfigError, match="from --version"):
        record_release("v1.0.0;ls", root=service)
    assert not (service / "releases").exists()

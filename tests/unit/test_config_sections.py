"""canary.toml sections: every section the harness's code reads is known to ``canary precheck`` and validated
by the same code that reads it for a stage."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.config_sections import ARRAY_READERS, SECTION_READERS, validate_section
from canary_harness.configuration.table import SETTINGS
from canary_harness.errors import ConfigError
from canary_harness.precheck import ChecklistItem, Status, run_precheck

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "canary_harness"
# `<toml-ish>.get("section", {})`: how the code reads a section of a parsed canary.toml.
SECTION_READ_RE = re.compile(r"toml\b[^\n]*?\.get\(\s*\"([a-z_]+)\"\s*,\s*\{\}\s*\)")
# `section_of(toml, "section"...)` and `{"section": ...}` handed to the table's validation.
SECTION_OF_RE = re.compile(r"section_of\(\s*\w+\s*,\s*\"([a-z_]+)\"")
NOT_CANARY_TOML = {"project"}  # a release's pyproject.toml [project], read by release_manifest.py


def sections_read_by_the_code() -> set[str]:
    """The canary.toml sections the harness's source reads, found in the source itself."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found.update(SECTION_READ_RE.findall(text), SECTION_OF_RE.findall(text))
    # The table of settings reads "section.key" for each setting given in canary.toml.
    found.update(key.partition(".")[0] for setting in SETTINGS for key in setting.toml)
    return found - NOT_CANARY_TOML


def test_every_section_the_code_reads_is_known_to_precheck() -> None:
    read = sections_read_by_the_code()
    # The scan itself must work: these are read in config.py, session.py, options.py and notify.py.
    assert {"stack", "traffic", "stage", "judge", "load", "prometheus", "notify"} <= read, read
    assert read <= set(SECTION_READERS), f"sections read but unknown to precheck: {read - set(SECTION_READERS)}"


@pytest.mark.parametrize(
    ("name", "section"),
    [
        ("stack", {"nginx_port": 18080, "backend": "process", "run_dir": ".canary"}),
        ("traffic", {"nginx": "managed", "reload_timeout": 5}),
        ("stage", {"observation_period": 20, "judge": "fixed"}),
        ("judge", {"alpha": 0.01}),
        ("load", {"users": 4}),
        ("prometheus", {"url": "http://127.0.0.1:9090", "window": 30, "versions": {"canary": "canary"}}),
        ("notify", {"urls": ["http://127.0.0.1:9/hook"], "retries": 1}),
    ],
)
def test_a_valid_section_has_no_warning(name: str, section: dict[str, object]) -> None:
    assert validate_section(name, section) == []


@pytest.mark.parametrize(
    ("name", "section", "message"),
    [
        ("stack", {"backend": "kubernetes"}, "kubernetes"),
        ("traffic", {"nginx": "external"}, "nginx_dir"),
        ("prometheus", {"window": -1}, "window"),
        ("prometheus", {"colour": 1}, "unknown [prometheus] key 'colour'"),
        ("notify", {"retries": -1}, "retries"),
    ],
)
def test_a_bad_value_is_refused_by_the_reader(name: str, section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_section(name, section)


@pytest.mark.parametrize(
    ("name", "section", "key"),
    [
        ("stack", {"nginx_port": 18080, "colour": 1}, "colour"),
        ("traffic", {"nginx": "managed", "weight": 5}, "weight"),
        ("stage", {"observaton_period": 20}, "observaton_period"),
    ],
)
def test_an_unknown_key_of_a_table_section_is_refused_naming_file_and_key(
    name: str, section: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_section(name, section, toml_file="ops/canary.toml")
    assert f"unknown [{name}] key {key!r} (ops/canary.toml)" in str(info.value)


def test_the_environment_completes_an_external_nginx() -> None:
    environ = {"CANARY_NGINX_DIR": "/etc/nginx", "CANARY_NGINX_URL": "http://127.0.0.1:8080"}
    assert validate_section("traffic", {"nginx": "external"}, environ) == []


def release_root(tmp_path: Path) -> Path:
    """A copy of what precheck reads of the repository: releases, NGINX templates, runbook."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "releases", root / "releases")
    shutil.copytree(REPO / "nginx", root / "nginx")
    (root / "docs").mkdir()
    shutil.copyfile(REPO / "docs" / "runbook.md", root / "docs" / "runbook.md")
    return root


def test_precheck_accepts_every_section_a_stage_reads(tmp_path: Path) -> None:
    root = release_root(tmp_path)
    (root / "canary.toml").write_text(
        "[stack]\nbackend = 'process'\n[traffic]\nnginx = 'managed'\n[stage]\nobservation_period = 20\n"
        "[judge]\nalpha = 0.01\n[load]\nusers = 4\n[prometheus]\nurl = 'http://127.0.0.1:9090'\n"
        "[notify]\nurls = []\n[workers]\nllm = 1\nrl = 1\n[metrics]\nsource = 'service'\n"
        "[shadow]\ndrop = ['/payments']\n[target]\nname = 'fragrance-ai'\n"
        "[[smoke]]\npath = '/health'\n"
    )
    report = run_precheck("v0.2.0", root=root, environ={}, nginx_bin="/nonexistent/nginx")
    rows: dict[str, ChecklistItem] = {row.name: row for row in report.results if row.name.startswith("config [")}
    assert set(rows) == {f"config [{name}]" for name in SECTION_READERS} | {
        f"config [[{name}]]" for name in ARRAY_READERS
    }
    assert {name: row.status for name, row in rows.items() if row.status is not Status.PASS} == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[stage]\nobservaton_period = 20\n", "unknown [stage] key 'observaton_period' (ops/canary.toml)"),
        ("[traffic]\nnginx = 'managed'\nweight = 5\n", "unknown [traffic] key 'weight' (ops/canary.toml)"),
        ("[stack]\nnginx_port = 'eighty'\n", "port 'eighty' (from ops/canary.toml [stack] nginx_port)"),
    ],
)
def test_canary_precheck_refuses_a_bad_table_naming_file_and_key_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    root = release_root(tmp_path)
    (root / "ops").mkdir()
    (root / "ops" / "canary.toml").write_text(text)
    argv = ["precheck", "--version", "v0.2.0", "--root", str(root), "--nginx-bin", "/nonexistent/nginx"]
    assert main([*argv, "--config", str(root / "ops" / "canary.toml")]) == 2
    out = capsys.readouterr().out
    assert message in " ".join(out.split()), out
    # The same file without the bad table: no config line fails, so the exit is not 2.
    (root / "ops" / "canary.toml").write_text("[stage]\nobservation_period = 20\n")
    assert main([*argv, "--config", str(root / "ops" / "canary.toml")]) != 2

"""The plugin's options with pytester: inert without a version, bad values are usage errors naming their
source, the documented precedence, and ``--help``. No servers: nothing here may start a stage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canary_harness.deploy.pids import children_of
from canary_harness.pytest_plugin.keys import OPTIONS_KEY
from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)


TRIVIAL_TEST = "def test_trivial():\n    assert True\n"


def own_children() -> set[int]:
    """PIDs of this process's children: an in-process session that starts nothing adds none."""
    return set(children_of(os.getpid()))


def test_inert_without_a_canary_version(pytester: pytest.Pytester, run_dir: Path) -> None:
    pytester.makepyfile(TRIVIAL_TEST)
    before = own_children()
    result = pytester.runpytest(*INNER_ARGS, f"--canary-run-dir={run_dir}", "--stage", "5")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert not run_dir.exists(), "an inert plugin created the run directory"
    assert not (pytester.path / ".canary").exists(), "an inert plugin created the default run directory"
    result.stdout.no_fnmatch_line("*canary:*")
    assert own_children() == before


def test_inert_under_xdist(pytester: pytest.Pytester, run_dir: Path) -> None:
    """The harness's own suite runs with ``pytest -n``: an inert plugin must not break worker set-up."""
    pytester.makepyfile(TRIVIAL_TEST + "\n\ndef test_other():\n    assert True\n")
    result = pytester.runpytest_subprocess(*INNER_ARGS, "-n", "2", f"--canary-run-dir={run_dir}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=2)
    assert not run_dir.exists()


# (extra command-line arguments, environment, ini lines, canary.toml, the value and the source named)
BAD_INPUTS = [
    pytest.param(["--stage", "150"], {}, "", "", "'150'", "from --stage", id="stage-150"),
    pytest.param(["--stage", "abc"], {}, "", "", "'abc'", "from --stage", id="stage-abc"),
    pytest.param(["--stage", "5.5"], {}, "", "", "'5.5'", "from --stage", id="stage-5.5"),
    pytest.param(["--stage", "-1"], {}, "", "", "'-1'", "from --stage", id="stage-minus-1"),
    pytest.param(["--stage", "0", "--shadow-share", "0"], {}, "", "", "'0'", "from --shadow-share", id="shadow-0"),
    pytest.param(
        ["--stage", "0"],
        {"CANARY_SHADOW_SHARE": "all"},
        "",
        "",
        "'all'",
        "from environment CANARY_SHADOW_SHARE",
        id="env-shadow-share",
    ),
    pytest.param(
        ["--stage", "shadow"],
        {},
        "",
        "[stage]\nshadow_share = 150\n",
        "150",
        "from canary.toml [stage] shadow_share",
        id="toml-shadow-share",
    ),
    pytest.param(
        ["--stage", "0"], {}, "", "[shadow]\ndrop = ['evolve']\n", "'evolve'", "[shadow]", id="toml-shadow-drop"
    ),
    pytest.param(
        ["--stage", "0", "--dry-run"], {}, "", "", "--canary-stage 0", "--canary-dry-run", id="shadow-dry-run"
    ),
    pytest.param(
        ["--stage", "5", "--canary-version", "v1;rm -rf /"],
        {},
        "",
        "",
        "'v1;rm -rf /'",
        "from --canary-version",
        id="version-shell",
    ),
    pytest.param([], {"CANARY_STAGE": "abc"}, "", "", "'abc'", "from environment CANARY_STAGE", id="env-stage"),
    pytest.param([], {}, "canary_stage = 101", "", "'101'", "from ini option canary_stage", id="ini-stage"),
    pytest.param(
        ["--stage", "5"],
        {"CANARY_OBSERVATION_PERIOD": "-5"},
        "",
        "",
        "'-5'",
        "from environment CANARY_OBSERVATION_PERIOD",
        id="env-period",
    ),
    pytest.param(
        ["--stage", "5"],
        {},
        "",
        '[stage]\nobservation_period = "soon"\n',
        "'soon'",
        "from canary.toml [stage] observation_period",
        id="toml-period",
    ),
    pytest.param(
        ["--stage", "5", "--canary-env", "1BAD=x"], {}, "", "", "'1BAD'=***", "from --canary-env", id="canary-env"
    ),
    pytest.param(
        ["--stage", "5"], {}, "canary_judge = bayes", "", "'bayes'", "from ini option canary_judge", id="ini-judge"
    ),
    pytest.param(
        ["--stage", "5"], {}, "canary_dry_run = maybe", "", "'maybe'", "from ini option canary_dry_run", id="ini-flag"
    ),
]


@pytest.mark.parametrize(("args", "env", "ini", "toml", "value", "source"), BAD_INPUTS)
def test_bad_value_is_a_usage_error_naming_value_and_source(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    run_dir: Path,
    args: list[str],
    env: dict[str, str],
    ini: str,
    toml: str,
    value: str,
    source: str,
) -> None:
    pytester.makepyfile(TRIVIAL_TEST)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    if toml:
        (pytester.path / "canary.toml").write_text(toml)
    for name, raw in env.items():
        monkeypatch.setenv(name, raw)
    before = own_children()
    result = pytester.runpytest(*INNER_ARGS, "--canary-version", "v0.2.0", f"--canary-run-dir={run_dir}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    message = "\n".join(line for line in result.stderr.lines if value in line)
    assert message, f"no error line names {value}:\n{result.stderr.str()}"
    assert source in message, f"the error does not name its source {source!r}: {message}"
    assert not run_dir.exists(), "a refused value still created the run directory"
    assert own_children() == before, "a refused value still started processes"


def test_stage_is_required_with_a_version(pytester: pytest.Pytester, run_dir: Path) -> None:
    pytester.makepyfile(TRIVIAL_TEST)
    result = pytester.runpytest(*INNER_ARGS, "--canary-version", "v0.2.0", f"--canary-run-dir={run_dir}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--canary-stage is required with --canary-version*"])
    assert not run_dir.exists()


# One setting, observation_period, given at every level that applies; the highest one present wins.
LEVELS = {
    "cli": 10.0,
    "env": 20.0,
    "ini": 30.0,
    "toml": 40.0,
}


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (("cli", "env", "ini", "toml"), 10.0),
        (("env", "ini", "toml"), 20.0),
        (("ini", "toml"), 30.0),
        (("toml",), 40.0),
        ((), 900.0),
    ],
    ids=["cli", "env", "ini", "toml", "default"],
)
def test_precedence_cli_env_ini_toml_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, present: tuple[str, ...], expected: float
) -> None:
    args = ["--canary-version", "v0.2.0", "--stage", "5"]
    if "cli" in present:
        args += ["--observation-period", str(LEVELS["cli"])]
    if "env" in present:
        monkeypatch.setenv("CANARY_OBSERVATION_PERIOD", str(LEVELS["env"]))
    if "ini" in present:
        pytester.makeini(f"[pytest]\ncanary_observation_period = {LEVELS['ini']}\n")
    if "toml" in present:
        (pytester.path / "canary.toml").write_text(f"[stage]\nobservation_period = {LEVELS['toml']}\n")
    # parseconfigure resolves the options (pytest_configure) without running a session.
    config = pytester.parseconfigure(*INNER_ARGS, *args)
    options = config.stash[OPTIONS_KEY]
    assert options.observation_period == expected
    assert (options.canary_version, options.stage) == ("v0.2.0", 5)


def test_canary_env_pairs_from_flag_and_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    config = pytester.parseconfigure(
        *INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "25", "--canary-env", "A=1", "--canary-env", "B=x=y"
    )
    assert dict(config.stash[OPTIONS_KEY].canary_env) == {"A": "1", "B": "x=y"}
    assert dict(config.stash[OPTIONS_KEY].stack.canary_env) == {"A": "1", "B": "x=y"}
    monkeypatch.setenv("CANARY_ENV", "C=3 D=4")
    config = pytester.parseconfigure(*INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "25")
    assert dict(config.stash[OPTIONS_KEY].canary_env) == {"C": "3", "D": "4"}


def test_ports_come_from_the_environment(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "5")
    stack = config.stash[OPTIONS_KEY].stack
    ports = (stack.nginx_port, stack.production_port, stack.canary_port)
    expected = tuple(
        int(os.environ[name]) for name in ("CANARY_NGINX_PORT", "CANARY_PRODUCTION_PORT", "CANARY_CANARY_PORT")
    )
    assert ports == expected


def test_help_shows_the_canary_group_with_ini_and_env_twins(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*INNER_ARGS, "--help")
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    assert "canary release verification:" in text
    # Each option's help names its ini twin and environment variable; pytest wraps long help lines.
    flat = " ".join(text.split())
    for flag, ini, env in [
        ("--canary-version", "canary_version", "CANARY_VERSION"),
        ("--stage", "canary_stage", "CANARY_STAGE"),
        ("--observation-period", "canary_observation_period", "CANARY_OBSERVATION_PERIOD"),
        ("--dry-run", "canary_dry_run", "CANARY_DRY_RUN"),
        ("--canary-env", "canary_env", "CANARY_ENV"),
    ]:
        assert flag in text, f"{flag} missing from --help"
        assert f"[ini {ini}, env {env}]" in flat, f"{flag}: ini/env twins not named in --help"
        result.stdout.fnmatch_lines([f"*{ini} (*):*"])


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("yes", True), ("0", False), ("off", False)])
def test_flag_ini_twin_takes_true_and_false(pytester: pytest.Pytester, raw: str, expected: bool) -> None:
    pytester.makeini(f"[pytest]\ncanary_dry_run = {raw}\n")
    config = pytester.parseconfigure(*INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "5")
    assert config.stash[OPTIONS_KEY].dry_run is expected

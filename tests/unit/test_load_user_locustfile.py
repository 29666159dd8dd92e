"""[load] profile = "locustfile": the user's file and classes checked at load, and the locust command lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from canary_harness.errors import ConfigError, LoadError
from canary_harness.loadgen import LoadSettings, resolve_engine
from canary_harness.loadgen import run as load_run
from canary_harness.loadgen.locust_engine import LOCUSTFILE, locust_argv, worker_argv
from canary_harness.loadgen.user_locustfile import defined_names

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/hello-locustfile.py"
SOURCE = "canary.toml [load]"


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _settings(**table: object) -> LoadSettings:
    return LoadSettings.from_mapping({"profile": "locustfile", **table}, SOURCE)


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in canary.toml are relative to the working directory: the repository root here."""
    monkeypatch.chdir(REPO)


def test_the_example_and_its_classes_are_accepted() -> None:
    settings = _settings(locustfile=EXAMPLE, user_classes=["ShopUser", "BrowserUser"])
    assert settings.profile == "locustfile" and settings.user_classes == ("ShopUser", "BrowserUser")
    assert _settings(locustfile=EXAMPLE).user_classes == ()  # every class of the file


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ({}, ["canary.toml [load]", "key 'locustfile'"]),
        ({"locustfile": "examples/nope.py"}, ["'examples/nope.py'", "canary.toml [load] key 'locustfile'", "no such"]),
        ({"locustfile": "examples"}, ["'examples'", "no such .py file"]),
        (
            {"locustfile": EXAMPLE, "user_classes": ["ShopUser", "CartUser"]},
            ["CartUser not defined in 'examples/hello-locustfile.py'", "key 'user_classes'", "canary.toml [load]"],
        ),
        ({"locustfile": EXAMPLE, "user_classes": ["Shop User"]}, ["'Shop User' is not a Python class name"]),
        ({"locustfile": EXAMPLE, "user_classes": "ShopUser"}, ["must be a list of class names"]),
        ({"locustfile": EXAMPLE, "user_classes": ["ShopUser", "ShopUser"]}, ["'ShopUser' is given twice"]),
        ({"locustfile": EXAMPLE, "engine": "builtin"}, ["engine 'builtin'", "cannot run a locustfile"]),
    ],
)
def test_bad_locustfile_settings_are_refused_naming_file_key_and_value(
    table: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(**table)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_user_classes_belong_to_the_locustfile_profile_only() -> None:
    with pytest.raises(ConfigError, match="only with profile \"locustfile\", not 'journey'"):
        LoadSettings.from_mapping({"user_classes": ["ShopUser"]}, SOURCE)
    with pytest.raises(ConfigError, match="LoadSettings"):  # built in code: the same checks
        LoadSettings(profile="locustfile", locustfile=Path(EXAMPLE), user_classes=("Nobody",))


def test_classes_are_found_without_importing_the_file(tmp_path: Path) -> None:
    path = tmp_path / "theirs.py"
    path.write_text(
        "import os\nfrom shop.users import Cart as CartUser, Base\n"
        "raise SystemExit('never imported')\n"
        "if os.environ.get('X'):\n    class Maybe: pass\nelse:\n    class Other: pass\n"
        "try:\n    class Tried: pass\nexcept ImportError:\n    class Fallback: pass\n"
        "def factory():\n    class Inner: pass\n",
        encoding="utf-8",
    )
    names = defined_names(path, "test")
    assert {"CartUser", "Base", "Maybe", "Other", "Tried", "Fallback", "os"} <= names
    assert "Inner" not in names and "Cart" not in names
    path.write_text("class Broken(:\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"theirs\.py.*cannot be read as Python"):
        defined_names(path, "test")


def test_locust_loads_the_harness_locustfile_then_the_users_and_runs_the_named_classes(tmp_path: Path) -> None:
    settings = _settings(locustfile=EXAMPLE, user_classes=["ShopUser"], users=6, max_requests=50, workers=2)
    argv = locust_argv("http://127.0.0.1:9", 3, settings, tmp_path, REPO / "load", master_port=5599)
    own, theirs = _flag(argv, "-f").split(",")
    assert own == str(REPO / "load" / LOCUSTFILE) and theirs == str(REPO / EXAMPLE)  # absolute: locust's cwd differs
    assert argv[-1] == "ShopUser" and "JourneyUser" not in argv
    assert _flag(argv, "--canary-max-requests") == "50" and _flag(argv, "--canary-rate") == "0"
    paced = locust_argv("http://127.0.0.1:9", 3, _settings(locustfile=EXAMPLE, rate_rps=25), tmp_path, REPO / "load")
    assert _flag(paced, "--canary-rate") == "25"  # the harness's locustfile paces the user's requests to it
    assert _flag(argv, "--canary-stats-file") == str(tmp_path / "canary.json")
    worker = worker_argv(REPO / "load", 5599, tmp_path / "w.log", _flag(argv, "-f"))
    assert _flag(worker, "-f") == _flag(argv, "-f")
    every = locust_argv("http://127.0.0.1:9", 3, _settings(locustfile=EXAMPLE), tmp_path, REPO / "load")
    # No class named: nothing follows the options, and locust runs every class of the user's file.
    assert every[0] == sys.executable and every[-2:] == ["--canary-stats-file", str(tmp_path / "canary.json")]


def test_without_locust_the_profile_is_refused_not_run_by_the_builtin_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_run, "locust_available", lambda: False)
    with pytest.raises(LoadError, match="needs locust"):
        resolve_engine(_settings(locustfile=EXAMPLE))
    assert resolve_engine(LoadSettings()) == "builtin"  # the harness's own profiles still run

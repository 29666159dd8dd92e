"""Unit tests of the secrets plumbing: redaction, the keyed environment hash and store, private files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from canary_harness.config import parse_env_pairs
from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.envstore import KEY_FILE, EnvStore
from canary_harness.errors import BackendError, StackError
from canary_harness.private import private_dir, write_private
from canary_harness.redact import is_secret_name, redact, register, show_env


def test_parsed_values_are_masked_in_every_harness_error() -> None:
    parse_env_pairs(["OPENAI_API_KEY=sk-unit-zz91", "MODE=plain-value-7"], "from --canary-env")
    error = StackError("started with OPENAI_API_KEY=sk-unit-zz91 MODE=plain-value-7 failed")
    assert str(error) == "started with OPENAI_API_KEY=*** MODE=*** failed"
    assert "sk-unit-zz91" not in repr(BackendError(str(error)))


def test_short_values_are_masked_only_under_secret_names() -> None:
    register({"FRAGRANCE_SEED": "42", "DB_PASSWORD": "q7z"})
    assert redact("seed 42, pw q7z") == "seed 42, pw ***"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("db_passwd", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("FRAGRANCE_LATENCY_SCALE", False),
        ("PORT", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_env_is_shown_without_values_and_secret_names_stay_masked_in_debug() -> None:
    env = {"API_TOKEN": "t0k3n-xyz", "FRAGRANCE_LATENCY_SCALE": "0.05"}
    assert show_env(env) == "API_TOKEN=*** FRAGRANCE_LATENCY_SCALE=***"
    assert show_env(env, debug=True) == "API_TOKEN=*** FRAGRANCE_LATENCY_SCALE=0.05"


def test_a_bad_entry_never_quotes_its_value() -> None:
    with pytest.raises(Exception) as info:
        parse_env_pairs(["1BAD=hunter2-secret"], "from --canary-env")
    assert "hunter2" not in str(info.value) and "'1BAD'=***" in str(info.value)


def test_key_alone_takes_the_value_from_the_environment() -> None:
    assert parse_env_pairs(["TOKEN"], "s", environ={"TOKEN": "tok-from-env-3k"}) == {"TOKEN": "tok-from-env-3k"}
    with pytest.raises(Exception, match="KEY alone for a variable set in the environment"):
        parse_env_pairs(["TOKEN"], "s", environ={})


def test_keyed_hash_is_stable_per_run_dir_and_differs_between_run_dirs(tmp_path: Path) -> None:
    one, other = EnvStore(tmp_path / "a"), EnvStore(tmp_path / "b")
    env = {"B": "2", "A": "1"}
    assert one.digest(env) == one.digest({"A": "1", "B": "2"}) != one.digest({"A": "1", "B": "3"})
    assert one.digest(env) != other.digest(env), "the hash must be keyed per run directory"
    assert "1" not in one.digest(env).split(":")[0]
    assert stat.S_IMODE((tmp_path / "a" / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700


def test_store_keeps_values_private_and_forgets_them(tmp_path: Path) -> None:
    store = EnvStore(tmp_path)
    store.save("canary", {"OPENAI_API_KEY": "sk-store"})
    assert stat.S_IMODE(store.values_file.stat().st_mode) == 0o600
    assert store.load("canary") == {"OPENAI_API_KEY": "sk-store"} and store.load("production") == {}
    store.forget()
    assert store.load("canary") == {}


def test_a_corrupt_store_is_reported_without_its_content(tmp_path: Path) -> None:
    store = EnvStore(tmp_path)
    store.values_file.write_text('{"canary": {"K": "sk-corrupt"')
    with pytest.raises(StackError) as info:
        store.load("canary")
    assert "sk-corrupt" not in str(info.value) and str(store.values_file) in str(info.value)


def test_a_service_handle_records_the_hash_not_the_environment(tmp_path: Path) -> None:
    handle = ServiceHandle(
        "canary",
        "v1",
        "http://127.0.0.1:1",
        1,
        tmp_path / "c.log",
        env={"OPENAI_API_KEY": "sk-handle"},
        env_digest="hmac-sha256:ab",
    )
    data = handle.to_json()
    assert "env" not in data and "sk-handle" not in repr(data) and "sk-handle" not in repr(handle)
    assert ServiceHandle.from_json(data).env_digest == "hmac-sha256:ab"
    with pytest.raises(StackError) as info:
        ServiceHandle.from_json({"role": "canary", "env": {"K": "sk-old-format"}})
    assert "sk-old-format" not in str(info.value)


def test_write_private_is_0600_atomic_and_tightens_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    target.parent.mkdir()
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [path.name for path in target.parent.iterdir()] == ["state.json"], "temporary file left behind"


def test_private_dir_tightens_an_existing_directory(tmp_path: Path) -> None:
    loose = tmp_path / "run"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    assert stat.S_IMODE(private_dir(loose).stat().st_mode) == 0o700

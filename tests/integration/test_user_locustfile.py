"""A team's own locustfile as a stage's load ([load] profile = "locustfile"): examples/hello-locustfile.py's
user classes drive a real stage of examples/hello_service.py through NGINX, with the harness's per-version
stats, closed loop or paced per request to a rate; a class the file does not define is refused before
anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.stack_state import load_state
from tests.integration.stagefixtures import CANARY_VERSION, REPO, StageRunner, binomial_bounds, processes_naming

pytest_plugins = ("tests.integration.stagefixtures",)

pytestmark = pytest.mark.integration

PRODUCTION_VERSION = "v0.1.0"  # the stage sessions' production release (the harness's default)


def locustfile_profile(tmp_path: Path, load_table: str) -> Path:
    """examples/hello-service.toml with its [load] table replaced by ``load_table``."""
    text = (REPO / "examples" / "hello-service.toml").read_text(encoding="utf-8")
    head, _, rest = text.partition("[load]")
    _, _, tail = rest.partition("[[smoke]]")
    assert head and tail, "examples/hello-service.toml has no [load] table before its [[smoke]] steps"
    profile = tmp_path / "hello-locustfile.toml"
    profile.write_text(f"{head}{load_table}\n[[smoke]]{tail}", encoding="utf-8")
    return profile


SHOP_USERS = """[load]
profile = "locustfile"
locustfile = "examples/hello-locustfile.py"
user_classes = ["ShopUser"]
"""


def test_a_stage_driven_by_the_teams_own_locustfile_passes_with_requests_per_served_version(
    stage_runner: StageRunner, tmp_path: Path
) -> None:
    run = stage_runner.run(25, 20, "--canary-target", str(locustfile_profile(tmp_path, SHOP_USERS)))
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "PASS", verdict
    record = run.record()
    assert record.load is not None
    [load] = record.load["runs"]
    # ShopUser's own request names, none of the harness's users.
    assert set(load["by_name"]) == {"/items", "/orders"}, load["by_name"]
    assert load["by_name"]["/orders"]["requests"] > 0 and load["failures"] == 0, load
    by_version = load["by_version"]
    assert set(by_version) == {CANARY_VERSION, PRODUCTION_VERSION}, by_version
    total = sum(by_version.values())
    assert total == load["requests"] > 200, load
    low, high = binomial_bounds(total, 0.25)
    assert low <= by_version[CANARY_VERSION] <= high, by_version
    assert "by served version: " in run.output and f"{CANARY_VERSION} {by_version[CANARY_VERSION]} reqs" in run.output
    assert load["target_rps"] is None  # closed loop: the class's own wait_time paced it


def test_the_teams_classes_are_paced_per_request_to_the_stage_rate(stage_runner: StageRunner, tmp_path: Path) -> None:
    # ShopUser's order task sends two requests: pacing its tasks would miss the rate, pacing requests holds it.
    rate = 60
    profile = locustfile_profile(tmp_path, SHOP_USERS)
    run = stage_runner.run(25, 15, "--canary-target", str(profile), "--canary-load-rate", str(rate))
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    record = run.record()
    assert record.load is not None
    [load] = record.load["runs"]
    assert load["target_rps"] == rate and set(load["by_name"]) == {"/items", "/orders"}, load
    # Unpaced, these users send ~150 req/s (the closed-loop test); paced, the rate holds within a few %.
    assert 0.85 * rate <= load["rps"] <= 1.05 * rate, load
    assert set(load["by_version"]) == {CANARY_VERSION, PRODUCTION_VERSION}, load["by_version"]


@pytest.mark.parametrize(
    ("load_table", "message"),
    [
        pytest.param(
            SHOP_USERS.replace('["ShopUser"]', '["ShopUser", "CartUser"]'),
            "key 'user_classes'): CartUser not defined in 'examples/hello-locustfile.py'",
            id="unknown-class",
        ),
        pytest.param(
            SHOP_USERS.replace("hello-locustfile.py", "hello-locustfiles.py"),
            "load locustfile 'examples/hello-locustfiles.py' (canary.toml [load] key 'locustfile'): no such .py file",
            id="missing-file",
        ),
    ],
)
def test_a_bad_locustfile_load_is_refused_with_nothing_started(
    stage_runner: StageRunner, tmp_path: Path, load_table: str, message: str
) -> None:
    run = stage_runner.run(25, 5, "--canary-target", str(locustfile_profile(tmp_path, load_table)))
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.describe()
    assert message in run.output, run.output[-3000:]
    assert load_state(stage_runner.run_dir) is None  # no service, no NGINX: no traffic could move
    assert processes_naming(stage_runner.run_dir) == []  # and no locust

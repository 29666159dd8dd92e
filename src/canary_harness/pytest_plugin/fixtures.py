"""Fixtures of the release checks (registered only when the plugin is active)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest

from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import CheckResult, StageVerdict, State
from canary_harness.load.journey import JOURNEY_HEADER
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.report import format_table

CLIENT_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def canary_options(pytestconfig: pytest.Config) -> StageOptions:
    """The resolved options of this stage (version, stage, thresholds file, load settings...)."""
    return pytestconfig.stash[OPTIONS_KEY]


@pytest.fixture(scope="session")
def canary_stage(pytestconfig: pytest.Config) -> StageRecord:
    """The stage record: what was started, the weight in force, the load, the verdict and its figures.

    On the controller it is the record the stage session just made; on an xdist worker it is read
    from the file the controller wrote.
    """
    record = pytestconfig.stash.get(RECORD_KEY, None)
    if record is None:
        path = pytestconfig.stash[RECORD_PATH_KEY]
        if not path.exists():
            pytest.fail(f"canary: no stage record at {path}: the stage did not run (collection error?)")
        record = StageRecord.read(path)
    return record


@pytest.fixture(scope="session")
def canary_verdict(canary_stage: StageRecord) -> StageVerdict:
    """The stage verdict; fails the test with the stage's error when the stage did not reach one."""
    if canary_stage.error:
        pytest.fail(f"canary stage {canary_stage.stage}% ended before a verdict: {canary_stage.error}",
                    pytrace=False)
    if canary_stage.verdict is None:
        pytest.fail("canary stage produced no verdict", pytrace=False)
    return StageVerdict.from_dict(canary_stage.verdict)


@pytest.fixture(scope="session")
def canary_check(canary_verdict: StageVerdict) -> Callable[[str], CheckResult]:
    """``canary_check(name)`` asserts that check ``name`` did not fail and returns it.

    FAIL fails the test with the check's message (metric, measured value, threshold, sample size).
    RUNNING means the observation ended early on another check's FAIL: the test is skipped with that
    reason (the session fails anyway). INCONCLUSIVE only reaches a test under on_inconclusive =
    pass_with_warning or extend_if_suspect, as a warning that says what the stage could not prove.
    """

    def check(name: str) -> CheckResult:
        result = canary_verdict.check(name)
        if result.state == State.FAIL:
            pytest.fail(result.message, pytrace=False)
        if result.state == State.RUNNING:
            pytest.skip(f"{name} not judged: {canary_verdict.reason}")
        if result.state == State.INCONCLUSIVE:
            warnings.warn(f"canary: {result.message}", UserWarning, stacklevel=2)
        return result

    return check


@pytest.fixture(scope="session")
def canary_thresholds(canary_options: StageOptions) -> JudgeSettings:
    """The judge settings and thresholds in force (canary.toml [judge] over the classic defaults)."""
    return JudgeSettings.from_mapping(canary_options.toml.get("judge", {}), "canary.toml [judge]")


def _client(record: StageRecord, url: str | None, what: str,
            headers: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    if url is None:
        pytest.fail(f"no {what} URL: the stage ended in {record.error or 'an unknown state'}", pytrace=False)
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S, headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def canary_client(canary_stage: StageRecord) -> Iterator[httpx.Client]:
    """HTTP client bound to the canary itself (bypassing NGINX)."""
    yield from _client(canary_stage, canary_stage.canary_url, "canary")


@pytest.fixture(scope="session")
def production_client(canary_stage: StageRecord) -> Iterator[httpx.Client]:
    """HTTP client bound to production itself."""
    yield from _client(canary_stage, canary_stage.production_url, "production")


@pytest.fixture(scope="session")
def nginx_client(canary_stage: StageRecord) -> Iterator[httpx.Client]:
    """HTTP client bound to NGINX, the entry point users hit (skipped in a dry run: no traffic moved)."""
    if canary_stage.dry_run:
        pytest.skip("dry run: traffic through NGINX is not part of this stage")
    # One journey id for the session: a DNA created through NGINX is asked for options on the same instance.
    journey = {JOURNEY_HEADER: f"release-checks-{uuid.uuid4().hex}"}
    yield from _client(canary_stage, canary_stage.nginx_url, "NGINX", journey)


@pytest.fixture(scope="session", autouse=True)
def _canary_allure_phases(request: pytest.FixtureRequest, canary_stage: StageRecord) -> None:
    """With --alluredir: one Allure step per stage phase, plus the figures and the upstream config."""
    if not request.config.getoption("allure_report_dir", None):
        return
    import allure

    for phase in canary_stage.phases:
        with allure.step(f"{phase.name}: {'ok' if phase.ok else 'FAILED'} — {phase.detail}"[:300]):
            pass
    if canary_stage.verdict is not None:
        allure.attach(format_table(StageVerdict.from_dict(canary_stage.verdict)), name="stage figures",
                      attachment_type=allure.attachment_type.TEXT)
    if canary_stage.upstream_config:
        allure.attach(canary_stage.upstream_config, name="upstream config in force",
                      attachment_type=allure.attachment_type.TEXT)
    if canary_stage.plan:
        allure.attach(canary_stage.plan, name="stage plan", attachment_type=allure.attachment_type.TEXT)

"""Fixtures of the release checks (registered only when the plugin is active)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest

from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State
from canary_harness.loadgen.journey import JOURNEY_HEADER
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.smoke import SMOKE_STAGE, canary_container, is_smoke_run, smoke_record
from canary_harness.report import format_table

__all__ = ["canary_container"]  # re-exported: registering this module registers the fixture

CLIENT_TIMEOUT_S = 60.0
# Straight to the canary: a canary that hangs must not hold each check for a minute.
CANARY_TIMEOUT = httpx.Timeout(15.0, connect=2.0)
CANARY_REACH_TIMEOUT_S = 2.0


@pytest.fixture(scope="session")
def canary_options(pytestconfig: pytest.Config) -> StageOptions:
    """The resolved options of this stage (version, stage, thresholds file, load settings...)."""
    return pytestconfig.stash[OPTIONS_KEY]


@pytest.fixture(scope="session")
def canary_stage(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> StageRecord:
    """The stage record: what was started, the weight in force, the load, the verdict and its figures.

    On the controller it is the record the stage session just made; on an xdist worker it is read
    from the file the controller wrote. In a smoke run (``--canary-backend testcontainers``) it names the
    throwaway ``canary_container`` and nothing else.
    """
    options = pytestconfig.stash[OPTIONS_KEY]
    if is_smoke_run(options):
        return smoke_record(options, request.getfixturevalue("canary_container"))
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
    if canary_stage.stage == SMOKE_STAGE:
        pytest.skip("smoke run (--canary-backend testcontainers): no stage, no verdict")
    if canary_stage.error:
        when = "after its verdict" if canary_stage.verdict else "before a verdict"
        pytest.fail(f"canary stage {canary_stage.stage}% ended {when}: {canary_stage.error}", pytrace=False)
    if canary_stage.verdict is None:
        pytest.fail("canary stage produced no verdict", pytrace=False)
    return StageVerdict.from_dict(canary_stage.verdict)


@pytest.fixture(scope="session")
def canary_check(canary_verdict: StageVerdict) -> Callable[[str], CheckVerdict]:
    """``canary_check(name)`` asserts that check ``name`` did not fail and returns it.

    FAIL fails the test with the check's message (metric, measured value, threshold, sample size).
    RUNNING means the observation ended early on another check's FAIL: the test is skipped with that
    reason (the session fails anyway). INCONCLUSIVE only reaches a test under on_inconclusive =
    pass_with_warning or extend_if_suspect, as a warning that says what the stage could not prove.
    """

    def check(name: str) -> CheckVerdict:
        result = canary_verdict.check(name)
        if result.state == State.FAIL:
            pytest.fail(result.message, pytrace=False)
        if result.state == State.RUNNING:
            pytest.skip(f"{name} not judged: {canary_verdict.reason}")
        if result.state == State.NOT_APPLICABLE:
            pytest.skip(result.message)
        if result.state == State.INCONCLUSIVE:
            warnings.warn(f"canary: {result.message}", UserWarning, stacklevel=2)
        return result

    return check


@pytest.fixture(scope="session")
def canary_thresholds(canary_options: StageOptions) -> JudgeSettings:
    """The judge settings and thresholds in force (canary.toml [judge] over the classic defaults)."""
    return JudgeSettings.from_mapping(canary_options.toml.get("judge", {}), "canary.toml [judge]")


def _client(
    record: StageRecord,
    url: str | None,
    what: str,
    headers: dict[str, str] | None = None,
    timeout: float | httpx.Timeout = CLIENT_TIMEOUT_S,
) -> Iterator[httpx.Client]:
    if url is None:
        pytest.fail(f"no {what} URL: the stage ended in {record.error or 'an unknown state'}", pytrace=False)
    with httpx.Client(base_url=url, timeout=timeout, headers=headers) as client:
        yield client


def canary_unreachable(url: str, timeout: float = CANARY_REACH_TIMEOUT_S) -> str | None:
    """Why the canary at ``url`` does not answer ``/health`` within ``timeout`` s; None when it does."""
    try:
        httpx.get(url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} on GET {url}/health within {timeout:g} s: {exc}"
    return None


@pytest.fixture(scope="session")
def canary_client(canary_stage: StageRecord) -> Iterator[httpx.Client]:
    """HTTP client bound to the canary itself (bypassing NGINX), with short timeouts.

    The canary is asked for /health once: when it does not answer (crashed or hung), every check using
    this client fails at once with that reason (a session fixture's error is reused) instead of each
    waiting out its own timeout.
    """
    if canary_stage.canary_url is not None:
        reason = canary_unreachable(canary_stage.canary_url)
        if reason is not None:
            pytest.fail(f"canary unreachable: {reason}", pytrace=False)
    yield from _client(canary_stage, canary_stage.canary_url, "canary", timeout=CANARY_TIMEOUT)


@pytest.fixture(scope="session")
def production_client(canary_stage: StageRecord) -> Iterator[httpx.Client]:
    """HTTP client bound to production itself."""
    yield from _client(canary_stage, canary_stage.production_url, "production")


@pytest.fixture(scope="session")
def nginx_client(canary_stage: StageRecord) -> Iterator[httpx.Client]:
    """HTTP client bound to NGINX, the entry point users hit (skipped in a dry run: no traffic moved)."""
    if canary_stage.stage == SMOKE_STAGE:
        pytest.skip("smoke run (--canary-backend testcontainers): no NGINX, the canary is checked directly")
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
        allure.attach(
            format_table(StageVerdict.from_dict(canary_stage.verdict)),
            name="stage figures",
            attachment_type=allure.attachment_type.TEXT,
        )
    if canary_stage.upstream_config:
        allure.attach(
            canary_stage.upstream_config, name="upstream config in force", attachment_type=allure.attachment_type.TEXT
        )
    if canary_stage.plan:
        allure.attach(canary_stage.plan, name="stage plan", attachment_type=allure.attachment_type.TEXT)


def judged_latency_groups(config: pytest.Config) -> tuple[str, ...]:
    """The latency groups the stage's judge checks (canary.toml / the target's [judge] p95_thresholds);
    fragrance-ai's LLM modes when the plugin is inert. For parametrizing release checks."""
    options = config.stash.get(OPTIONS_KEY, None)
    toml = options.toml if options is not None else {}
    return JudgeSettings.from_mapping(toml.get("judge", {}), "canary.toml [judge]").modes


def judged_ratio_checks(config: pytest.Config) -> tuple[str, ...]:
    """The names of the stage's counter-ratio checks (``ratio[<name>]`` of ``[[judge.ratios]]``); none when the
    plugin is inert or the target has none. For parametrizing release checks."""
    options = config.stash.get(OPTIONS_KEY, None)
    toml = options.toml if options is not None else {}
    return tuple(
        ratio.check for ratio in JudgeSettings.from_mapping(toml.get("judge", {}), "canary.toml [judge]").ratios
    )

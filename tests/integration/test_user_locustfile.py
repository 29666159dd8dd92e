"""A team's own locustfile as a stage's load ([load] profile = "locustfile"): examples/hello-locustfile.py's
user classes drive a real stage of examples/hello_service.py through NGINX, with the harness's per-version
stats, closed loop or paced per request to a rate; a class the file does not define is refused before
anything starts. Straight to the service (LoadRun): local workers split the rate and the request cap, and a
class that is not an HTTP user cannot be paced."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from canary_harness.errors import LoadError
from canary_harness.loadgen import LoadRun, LoadSettings
from canary_harness.ports import free_port
from canary_harness.stack_state import load_state
from canary_harness.waiting import wait_until
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


def run_hello(env: dict[str, str]) -> Iterator[str]:
    """examples/hello_service.py on a free loopback port with ``env`` added (its faults), stopped by PID."""
    port = free_port()
    argv = [sys.executable, "examples/hello_service.py", "--host", "127.0.0.1", "--port", str(port), "--release", "v1"]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, f"hello_service.py exited with code {proc.returncode}"
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200

    try:
        wait_until(healthy, 20.0, describe=f"hello_service.py at {url}/health", ignore=(httpx.HTTPError,))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def hello_url() -> Iterator[str]:
    """examples/hello_service.py on a free loopback port."""
    yield from run_hello({})


@pytest.fixture
def slow_hello_url() -> Iterator[str]:
    """examples/hello_service.py answering its API after 2 s (its /health at once)."""
    yield from run_hello({"HELLO_DELAY_MS": "2000"})


def test_workers_share_the_rate_and_stop_at_the_request_cap(hello_url: str, tmp_path: Path) -> None:
    settings = LoadSettings(
        profile="locustfile",
        locustfile=REPO / "examples" / "hello-locustfile.py",
        users=6,
        workers=2,
        rate_rps=40,
        max_requests=120,
    )
    with LoadRun(hello_url, 20, settings, tmp_path / "load") as run:
        wait_until(lambda: not run.running(), 30.0, describe="the load to stop at its cap")
    stats = run.stats
    assert stats is not None
    # Every request took a slot of the cap first: exactly the cap, each worker its half, ended by the cap
    # (at 40 req/s: ~3 s, well before the 20 s limit).
    assert stats.requests == 120 and stats.failures == 0, stats.format_table()
    assert dict(stats.by_worker) == {"worker-0": 60, "worker-1": 60}, stats.by_worker
    assert stats.duration_s < 10 and stats.by_version == {"v1": 120}, stats.format_table()
    assert set(stats.by_name) <= {"/items", "/orders"} and "/orders" in stats.by_name  # both of the file's classes


def test_a_class_that_is_not_an_http_user_is_refused_with_a_rate(tmp_path: Path) -> None:
    raw = tmp_path / "raw.py"
    raw.write_text(
        "from locust import User, constant, task\n\n\nclass RawUser(User):\n    wait_time = constant(1)\n\n"
        "    @task\n    def noop(self) -> None:\n        pass\n",
        encoding="utf-8",
    )
    run = LoadRun("http://127.0.0.1:9", 10, LoadSettings(profile="locustfile", locustfile=raw, rate_rps=10), tmp_path)
    run.start()
    wait_until(lambda: not run.running(), 30.0, describe="locust to refuse the class")
    with pytest.raises(LoadError) as info:
        run.stop()
    assert "--canary-rate 10.0: paces HttpUser and FastHttpUser classes, not RawUser" in str(info.value)
    assert not (tmp_path / "locust.json").exists()  # it never ran


IMPATIENT_CLASSES = """from locust import FastHttpUser, HttpUser, constant, task


class PlainUser(HttpUser):
    wait_time = constant(0)

    @task
    def items(self) -> None:
        self.client.get("/items", name="plain")


class FastUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def items(self) -> None:
        self.client.get("/items", name="fast")


class PatientUser(HttpUser):
    wait_time = constant(0)

    @task
    def items(self) -> None:
        self.client.get("/items", name="own timeout", timeout=10)
"""


def test_the_teams_requests_time_out_at_the_stage_timeout_unless_they_set_their_own(
    slow_hello_url: str, tmp_path: Path
) -> None:
    locustfile = tmp_path / "impatient.py"
    locustfile.write_text(IMPATIENT_CLASSES, encoding="utf-8")
    settings = LoadSettings(profile="locustfile", locustfile=locustfile, users=6, request_timeout_s=0.5)
    with LoadRun(slow_hello_url, 6, settings, tmp_path / "load") as run:
        wait_until(lambda: not run.running(), 30.0, describe="the load run to end")
    stats = run.stats
    assert stats is not None
    by_name = stats.by_name
    assert set(by_name) == {"plain", "fast", "own timeout"}, stats.format_table()
    # Unanswered after 0.5 s: failed, at about the timeout, not after the service's 2 s.
    for name in ("plain", "fast"):
        assert by_name[name].requests >= 3 and by_name[name].failures == by_name[name].requests, stats.format_table()
        assert by_name[name].max_ms < 1500, stats.format_table()
    # The timeout a request gives itself wins: answered after the 2 s.
    patient = by_name["own timeout"]
    assert patient.requests >= 1 and patient.failures == 0 and patient.p50_ms >= 2000, stats.format_table()

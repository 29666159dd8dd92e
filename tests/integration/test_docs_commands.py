"""The README's and the guides' sample commands, run as the docs show them (read from the markdown by
tests/docsmarkdown.py) with short windows and free ports, and their sample outputs, files and events
checked against what really happens.

- every sample output of the docs (``canary plan``, ``canary precheck``) holds, line by line;
- the traffic guide's quick start (stack up, weights, status, stack down) around two stages run with
  the README's stage command: the load files docs/load.md lists are written, per stage, and every
  journal event is one docs/precheck.md documents;
- the deployment guide's rehearsal (rollout, promote, stack down) ends with the summary the guide shows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.docsmarkdown import REPO, Command, SampleOutput, blocks, commands, missing_lines, sample_outputs
from tests.integration.stagefixtures import LATENCY_ENV, StageRunner

pytestmark = pytest.mark.integration
pytest_plugins = ("tests.integration.stagefixtures",)

CANARY = [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())"]
WINDOW_S = "4"  # every documented observation period is shortened to this
COMMAND_TIMEOUT_S = 240.0


def run(argv: Sequence[str], env: Mapping[str, str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run a documented command (``canary``/``pytest`` as this interpreter runs them); its output, exit 0."""
    words = list(argv)
    if words[0] == "canary":
        words = CANARY + words[1:]
    elif words[0] == "pytest":
        words = [sys.executable, "-m", "pytest", *words[1:], "-p", "no:cacheprovider"]
    result = subprocess.run(
        words,
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(argv)}` exited {result.returncode}:\n{output[-4000:]}"
    return output


def with_value(argv: Sequence[str], flag: str, value: str) -> list[str]:
    """``argv`` with the value of ``flag`` replaced (the documented window shortened, a path moved)."""
    words = list(argv)
    assert flag in words, f"{flag} not in {words}"
    words[words.index(flag) + 1] = value
    return words


def block_of(doc: str, containing: str) -> list[Command]:
    """The commands of the first ```bash block of ``doc`` that contains ``containing``."""
    for block in blocks(REPO / doc):
        found = commands(block)
        if any(containing in command.text for command in found):
            return found
    raise AssertionError(f"no bash block of {doc} runs {containing!r}: the doc changed, update this test")


def documented(doc: str, sentence_start: str, pattern: str) -> set[str]:
    """The backticked names in the paragraph of ``doc`` that starts with ``sentence_start``."""
    text = (REPO / doc).read_text(encoding="utf-8")
    start = text.find(sentence_start)
    assert start >= 0, f"{doc} no longer says {sentence_start!r}: update this test"
    paragraph = text[start : text.find("\n\n", start)]
    return set(re.findall(pattern, paragraph))


@pytest.fixture
def environ(stage_runner: StageRunner) -> dict[str, str]:
    """The commands' environment: the stage runner's free ports and run directory, a fast service."""
    env = stage_runner.environ()
    env.pop("OPENAI_API_KEY", None)  # the docs show the optional secret unset
    key, value = LATENCY_ENV.split("=", 1)
    env.update({"CANARY_RUN_DIR": str(stage_runner.run_dir), key: value})
    return env


SAMPLES = sample_outputs()


@pytest.mark.parametrize("sample", SAMPLES, ids=[f"{s.expected.where} {s.command.text}" for s in SAMPLES])
def test_every_sample_output_holds(sample: SampleOutput, environ: dict[str, str]) -> None:
    output = run(sample.command.argv, environ)
    missing = missing_lines(sample.expected.text, output)
    assert not missing, (
        f"{sample.expected.where}: `{sample.command.text}` no longer prints these lines of the doc:\n"
        + "\n".join(missing)
        + f"\n--- it printed:\n{output[-4000:]}"
    )


def test_quick_start_around_two_stages(stage_runner: StageRunner, environ: dict[str, str]) -> None:
    quick_start = block_of("docs/traffic.md", "canary stack up")
    assert [command.argv[:3] for command in quick_start][-1] == ["canary", "stack", "down"]
    for command in quick_start[:-1]:
        output = run(command.argv, environ)
        if command.argv[:2] == ["canary", "weights"] and len(command.argv) == 3:
            weight = int(command.argv[2])
            assert f"production {100 - weight}%" in output and f"canary {weight}%" in output, output

    window = "--canary-observation-period"
    stage = next(c for c in block_of("README.md", window) if window in c.argv and c.argv[0] == "pytest")
    argv = with_value(stage.argv, window, WINDOW_S)
    for _ in range(2):
        output = run(argv, environ)
        assert "PASSED" in output, output[-3000:]

    run_dir = stage_runner.run_dir
    records = sorted((run_dir / "stages").glob("stage-*.json"))
    assert len(records) == 2, records
    files = documented("docs/load.md", "Each stage keeps its load files", r"`([\w.]+\.(?:json|csv|log|out))`")
    assert {"locust.json", "canary.json", "locust_stats.csv", "locust.log"} <= files, files
    for record in records:
        load_dir = run_dir / "load" / record.stem / "nginx"
        present = {path.name for path in load_dir.iterdir()} if load_dir.is_dir() else set()
        assert files <= present, f"{load_dir}: docs/load.md lists {sorted(files - present)}, not written"
        assert json.loads(record.read_text())["load"]["runs"], f"{record}: no load run recorded"

    events = documented("docs/precheck.md", "Columns: time (UTC), event", r"`([a-z_]+)`")
    assert {"weight", "stage_verdict", "rollback_failed"} <= events, events
    history = run(["canary", "history", "--json"], environ)
    seen = {json.loads(line)["event"] for line in history.splitlines() if line.startswith("{")}
    assert {"weight", "stage_verdict"} <= seen, history
    assert seen <= events, f"journal events the docs do not name: {sorted(seen - events)}"

    run(quick_start[-1].argv, environ)
    assert not (run_dir / "state.json").exists(), "canary stack down left the stack recorded"


def test_the_guide_rehearsal(stage_runner: StageRunner, environ: dict[str, str]) -> None:
    rehearsal = block_of("docs/canary-deployment-guide.md", "--observation-period 15")
    env = dict(environ)
    for command in rehearsal:
        if command.argv[0] == "export":
            for pair in command.argv[1:]:
                name, value = pair.split("=", 1)
                if not name.endswith("_PORT"):  # the runner's free ports stand in for the documented ones
                    env[name] = value
    steps = [c.argv for c in rehearsal if c.argv[0] == "canary"]
    assert [step[:2] for step in steps] == [["canary", "rollout"], ["canary", "promote"], ["canary", "stack"]]
    run_dir = str(stage_runner.run_dir)
    rollout = with_value(with_value(steps[0], "--run-dir", run_dir), "--observation-period", WINDOW_S)
    output = run(rollout, env, timeout=600)

    summary = next(b for b in blocks(REPO / "docs/canary-deployment-guide.md") if "Rollout summary" in b.text)
    assert "That run took" in summary.before
    expected = re.sub(r"\b\d+s\b", "…", summary.text)  # durations depend on the machine, not the doc
    missing = missing_lines(expected, output)
    assert not missing, f"the rollout summary of the guide does not hold: {missing}\n{output[-4000:]}"

    run(with_value(steps[1], "--run-dir", run_dir), env)
    run(with_value(steps[2], "--run-dir", run_dir), env)
    assert not (Path(run_dir) / "state.json").exists(), "canary stack down left the stack recorded"


def test_the_any_service_command_as_the_readme_shows_it(environ: dict[str, str]) -> None:
    """The README's command for another service, with what a user gets by default: the load sized to decide."""
    [stage] = [c for c in block_of("README.md", "examples/hello-service.toml") if c.argv[0] == "pytest"]
    env = {name: value for name, value in environ.items() if name != "CANARY_LOAD_RATE"}
    output = run([*stage.argv, "--canary-observation-period", WINDOW_S], env)
    assert "load rate auto: " in output and "stage 25% PASSED for v2" in output, output[-3000:]
    assert "p95_latency[all]" in output and "fast" not in re.findall(r"p95_latency\[(\w+)\]", output), output[-3000:]

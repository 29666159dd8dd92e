"""Issue 11 item 7: bad input ends in one clear line and a usage exit code, never in a traceback.

Table-driven over every command that reads a configuration file (``canary ...`` exits 2, a stage session
``pytest --canary-version`` exits 4): a ``canary.toml`` that is a directory or not UTF-8. Then the journal
(a line that is ``[]`` or not UTF-8: skipped with a warning where the rollout must go on, refused by
``history`` and ``promote``), a service whose ``/health`` answers a JSON list, and a 50 MiB request body
to the reference service (413 without reading it, no echo, bounded memory). Each case also checks that
nothing changed: no run directory created, the journal and stack untouched.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from canary_harness import journal
from canary_harness.deploy.process import ProcessBackend
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.errors import ConfigError
from tests.integration.stackfixtures import free_ports

REPO = Path(__file__).resolve().parents[2]
CLI_ENTRY = "import sys; from canary_harness.cli import main; sys.exit(main())"

# Every command reading canary.toml, as argv after `canary` (the config and run dir are appended).
CONFIG_COMMANDS = [
    ("stack", "up"),
    ("stack", "status"),
    ("stack", "down"),
    ("weights", "0"),
    ("plan", "--stage", "5", "--rps", "10"),
    ("history",),
    ("rollback",),
    ("promote", "--version", "v0.2.0"),
    ("rollout", "--version", "v0.2.0"),
]


def _bad_toml(tmp_path: Path, kind: str) -> tuple[Path, str]:
    if kind == "directory":
        path = tmp_path / "canary.toml"
        path.mkdir()
        return path, "not a regular file"
    path = tmp_path / "canary.toml"
    path.write_bytes(b'[stack]\nproduction_version = "v0.1.0"\n# caf\xe9 \xff\xfe\n')
    return path, "not UTF-8"


def _canary(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI_ENTRY, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _one_clear_line(stderr: str, *needles: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert all(needle in lines[0] for needle in needles), f"{needles} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("kind", ["directory", "not-utf8"])
@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda words: " ".join(words[:2]))
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path: Path, command: tuple[str, ...], kind: str) -> None:
    config, problem = _bad_toml(tmp_path, kind)
    run_dir = tmp_path / "run"
    # From the test's directory: a default run directory (.canary) would be created there, and is checked.
    where = () if command[0] == "plan" else ("--run-dir", str(run_dir))
    result = _canary(*command, "--config", str(config), *where, cwd=tmp_path)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    _one_clear_line(result.stderr, str(config), problem)
    assert not run_dir.exists() and not (tmp_path / ".canary").exists(), "a refused configuration created a run dir"


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["directory", "not-utf8"])
def test_a_bad_config_file_refuses_the_stage_session_with_exit_4(tmp_path: Path, kind: str) -> None:
    config, problem = _bad_toml(tmp_path, kind)
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--canary-version",
            "v0.2.0",
            "--stage",
            "5",
            f"--canary-config={config}",
            f"--canary-run-dir={run_dir}",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout[-2000:] + result.stderr[-2000:]
    _one_clear_line(result.stderr, str(config), problem)
    assert not run_dir.exists()


# ------------------------------------------------------------------------------------------------ journal
GOOD = {
    "time": 1.0,
    "event": "rollout_start",
    "version": "v0.2.0",
    "stage": None,
    "actor": "t",
    "reason": "r",
    "details": {},
}
BAD_LINES = {"list": b"[]\n", "not-utf8": b'{"time": 2.0, "event": "w\xff"}\n', "no-event": b'{"time": 2.0}\n'}


def _journal_with(run_dir: Path, bad: bytes) -> bytes:
    run_dir.mkdir(parents=True)
    content = (json.dumps(GOOD) + "\n").encode() + bad + (json.dumps({**GOOD, "time": 3.0}) + "\n").encode()
    journal.journal_path(run_dir).write_bytes(content)
    return content


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_the_rollout_reader_skips_a_damaged_line_with_a_warning(
    tmp_path: Path, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    _journal_with(run_dir, bad)
    with caplog.at_level(logging.WARNING, logger="canary_harness.journal"):
        entries = list(journal.read(run_dir))
    assert [entry.time for entry in entries] == [1.0, 3.0]
    assert [record.getMessage() for record in caplog.records if "line 2" in record.getMessage()], caplog.text
    with pytest.raises(ConfigError, match=r"line 2: .*fix or remove the line"):
        list(journal.read(run_dir, strict=True))


def test_a_torn_last_line_is_skipped_silently(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tmp_path.joinpath("run").mkdir()
    journal.journal_path(tmp_path / "run").write_text(json.dumps(GOOD) + '\n{"time": 2.0, "ev')
    with caplog.at_level(logging.WARNING):
        assert [entry.time for entry in journal.read(tmp_path / "run", strict=True)] == [1.0]
    assert not caplog.records


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
@pytest.mark.parametrize("command", [("history",), ("promote", "--version", "v0.2.0")], ids=["history", "promote"])
def test_history_and_promote_refuse_a_damaged_journal(tmp_path: Path, bad: bytes, command: tuple[str, ...]) -> None:
    run_dir = tmp_path / "run"
    content = _journal_with(run_dir, bad)
    result = _canary(*command, "--run-dir", str(run_dir))
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    _one_clear_line(result.stderr, str(journal.journal_path(run_dir)), "line 2")
    assert journal.journal_path(run_dir).read_bytes() == content, "the journal was changed"


# ------------------------------------------------------------------------------------------------ /health
class _ListHealth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        body = b'["healthy", "v0.2.0"]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def list_health_url() -> Iterator[str]:
    """A loopback server whose every GET answers a JSON list; shut down at teardown."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ListHealth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.integration
def test_a_health_answering_a_json_list_fails_the_preflight_naming_the_url(
    tmp_path: Path, list_health_url: str
) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--canary-version",
            "v0.2.0",
            "--stage",
            "5",
            "--dry-run",
            f"--canary-url={list_health_url}",
            # the same server under another name: the two URLs must differ
            f"--production-url={list_health_url.replace('127.0.0.1', 'localhost')}",
            "--no-load",
            "--observation-period",
            "2",
            f"--canary-run-dir={run_dir}",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "Traceback" not in output and "AttributeError" not in output, output[-3000:]
    assert f"{list_health_url}/health answered a JSON list, not an object" in output, output[-3000:]
    assert not (run_dir / "state.json").exists(), "a dry run against given URLs started a stack"


# ------------------------------------------------------------------------------------------------ 50 MiB
def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for PID {pid}")


@pytest.mark.integration
def test_a_50_mib_body_gets_413_without_echo_or_memory_growth(tmp_path: Path) -> None:
    backend = ProcessBackend()
    (port,) = free_ports(1)
    handle = backend.start(
        ServiceSpec(
            role="canary",
            version="v0.2.0",
            port=port,
            log_path=tmp_path / "svc.log",
            env={"FRAGRANCE_LATENCY_SCALE": "0"},
        )
    )
    try:
        assert handle.pid is not None
        before = _rss_kib(handle.pid)
        big = b'{"brief": "' + b"x" * (50 * 1024 * 1024) + b'", "mode": "fast"}'
        with httpx.Client(base_url=handle.url, timeout=60) as client:
            declared = client.post("/dna/create", content=big, headers={"Content-Type": "application/json"})
            chunked = client.post(
                "/dna/create",
                content=(big[i : i + 65536] for i in range(0, len(big), 65536)),
                headers={"Content-Type": "application/json"},
            )
            # Within the limit but invalid (brief over 2000 characters): a 422 that does not echo the input.
            invalid = client.post("/dna/create", json={"brief": "y" * 500_000, "mode": "fast"})
            healthy = client.get("/health")
        for response in (declared, chunked):
            assert response.status_code == 413, (response.status_code, response.text[:300])
            assert len(response.content) < 1024 and "bytes" in response.json()["detail"]
        assert invalid.status_code == 422 and len(invalid.content) < 4096 and "yyyy" not in invalid.text
        assert healthy.status_code == 200
        grown_mib = (_rss_kib(handle.pid) - before) / 1024
        assert grown_mib < 40, f"RSS grew by {grown_mib:.0f} MiB"
    finally:
        backend.stop(handle)

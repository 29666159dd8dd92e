"""A local Prometheus for one stage: the real binary, its own data dir, a loopback port, stopped by PID.

The scrape config has the shape of ``compose/prometheus.yml``: one job ``fragrance-ai`` whose static
targets carry the target label ``version="production"`` or ``version="canary"`` (an arm may have several
targets: the canary's API and its workers, which the queries sum), scraped every second by default so that
a stage's ticks see fresh counters. ``render_config`` writes it for the given
targets; ``promtool check config`` validates it when promtool is installed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from canary_harness.deploy import pids
from canary_harness.deploy.pids import port_is_free, tail
from canary_harness.errors import ConfigError, MetricsError
from canary_harness.metrics.promql import JOB, check_label_value
from canary_harness.waiting import wait_until

DEFAULT_SCRAPE_INTERVAL_S = 1.0
_TARGET_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def find_binary(name: str, given: str | None = None) -> str | None:
    """The executable ``given`` (a path or name; no fallback), else ``name`` on PATH or in /usr/bin.

    None if absent.
    """
    for candidate in (given,) if given else (name, f"/usr/bin/{name}"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def check_target(raw: object, source: str) -> str:
    """A scrape target ``host:port``; ConfigError naming ``source`` otherwise."""
    text = str(raw).strip()
    match = _TARGET_RE.match(text)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(f"scrape target {raw!r} ({source}): must be host:port, e.g. 127.0.0.1:8001")
    return text


Targets = Mapping[str, str | Sequence[str]]


def check_targets(targets: Targets) -> dict[str, tuple[str, ...]]:
    """Each arm's scrape targets (one ``host:port`` or several); ConfigError naming the bad one."""
    checked: dict[str, tuple[str, ...]] = {}
    for role, given in targets.items():
        addresses = (given,) if isinstance(given, str) else tuple(given)
        if not addresses:
            raise ConfigError(f"Prometheus config: no scrape target for {role}")
        checked[role] = tuple(check_target(address, f"target of {role}") for address in addresses)
    return checked


def _duration(seconds: float) -> str:
    # Prometheus durations take integer units: whole seconds as "1s", anything else in milliseconds.
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render_config(
    targets: Targets,
    *,
    job: str = JOB,
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
    header: str = "",
) -> str:
    """The Prometheus YAML: job ``job``, one static target group per arm with the label ``version=<arm>``.

    ``targets`` maps the arm (the ``version`` label value: "production", "canary") to ``host:port`` or a
    list of them.
    Strings are written as JSON strings, which YAML reads as double-quoted scalars.
    """
    if not targets:
        raise ConfigError("Prometheus config: no scrape target given")
    if not math.isfinite(scrape_interval_s) or not 0.01 <= scrape_interval_s <= 3600:
        raise ConfigError(f"scrape interval {scrape_interval_s!r}s: must be between 0.01 and 3600 seconds")
    job = check_label_value(job, "job", "render_config")
    interval = _duration(scrape_interval_s)
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [
        "global:",
        f"  scrape_interval: {interval}",
        # A scrape may not outlast the interval (Prometheus refuses the config otherwise).
        f"  scrape_timeout: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
        f"  - job_name: {json.dumps(job)}",
        '    metrics_path: "/metrics"',
        "    static_configs:",
    ]
    for role, addresses in check_targets(targets).items():
        label = check_label_value(role, "version label", "render_config targets")
        lines += [
            f"      - targets: [{', '.join(json.dumps(address) for address in addresses)}]",
            f"        labels: {{version: {json.dumps(label)}}}",
        ]
    return "\n".join(lines) + "\n"


def promtool_check_config(path: Path, *, promtool: str | None = None, timeout: float = 30.0) -> str | None:
    """``promtool check config PATH``: its output, None if promtool is not installed.

    MetricsError with promtool's output when it rejects the file.
    """
    binary = find_binary("promtool", promtool)
    if binary is None:
        return None
    try:
        argv = [binary, "check", "config", str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MetricsError(f"promtool check config {path} could not run: {exc}") from exc
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise MetricsError(f"promtool rejected {path} (exit {result.returncode}):\n{output}")
    return output


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalPrometheus:
    """The real ``prometheus`` binary scraping the given targets, as a context manager.

    ``targets`` maps the arm to ``host:port`` (or several). Files go to ``run_dir`` (config, ``data/``,
    ``prometheus.log``), kept afterwards; without it a temporary directory is used and removed on
    stop. The server listens on ``host:port`` (a free loopback port by default) and is stopped by
    its PID (SIGTERM, then SIGKILL) on exit, also when the ``with`` body fails.
    """

    def __init__(
        self,
        targets: Targets,
        *,
        run_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
        job: str = JOB,
        binary: str | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.targets = check_targets(targets)
        self.job = job
        self.host = host
        self.port = port
        self.scrape_interval_s = scrape_interval_s
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._given_dir = Path(run_dir) if run_dir is not None else None
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._start_time: int | None = None
        # Check the config now: bad input fails before anything is started or written.
        render_config(self.targets, job=job, scrape_interval_s=scrape_interval_s)

    # ------------------------------------------------------------------ paths and identity
    @property
    def url(self) -> str:
        """Base URL of the running server (``http://127.0.0.1:PORT``)."""
        if self.port is None:
            raise MetricsError("local Prometheus is not started: no URL yet")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the server while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        if self.dir is None:
            raise MetricsError("local Prometheus is not started: no directory yet")
        return self.dir / "prometheus.log"

    def command(self, config: Path, data: Path) -> list[str]:
        """The argv that starts the server."""
        binary = find_binary("prometheus", self._binary)
        if binary is None:
            raise MetricsError(
                f"prometheus executable {self._binary or 'prometheus'!r} not found on PATH or in /usr/bin "
                "(install it with: apt-get install -y prometheus)"
            )
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalPrometheus:
        """Write the config, validate it, start the server and wait for ``/-/ready``."""
        if self._proc is not None:
            raise MetricsError(f"local Prometheus already started (PID {self._proc.pid})")
        if self.port is None:
            self.port = _free_port(self.host)
        elif not port_is_free(self.host, self.port):
            raise MetricsError(f"cannot start Prometheus: {self.host}:{self.port} is already in use")
        self.dir = self._given_dir or Path(tempfile.mkdtemp(prefix="canary-prometheus-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        config, data = self.dir / "prometheus.yml", self.dir / "data"
        config.write_text(
            render_config(
                self.targets,
                job=self.job,
                scrape_interval_s=self.scrape_interval_s,
                header="Written by canary-harness for one stage.",
            )
        )
        try:
            promtool_check_config(config)
            argv = self.command(config, data)
            with self.log_path.open("ab") as out:
                try:
                    self._proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        env={**os.environ, **pids.marker_env(self.dir)},
                        start_new_session=True, close_fds=True,
                    )  # fmt: skip
                except OSError as exc:
                    raise MetricsError(f"cannot run {argv[0]}: {exc}") from exc
            pids.track_child(self._proc)
            self._start_time = pids.process_start_time(self._proc.pid)
            self._wait_ready(argv)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, argv: list[str]) -> None:
        proc = self._proc
        assert proc is not None

        def ready() -> bool:
            if proc.poll() is not None:
                raise MetricsError(f"exited with code {proc.returncode} before becoming ready")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, self.startup_timeout, 0.05, f"{self.url}/-/ready")
        except (TimeoutError, MetricsError) as exc:
            raise MetricsError(
                f"Prometheus (PID {proc.pid}, {' '.join(argv)}) did not become ready: {exc}\n"
                f"--- last lines of {self.log_path} ---\n{tail(self.log_path)}"
            ) from exc

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by PID (SIGTERM, SIGKILL after ``timeout``); remove a temporary directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                pids.terminate(proc.pid, start_time=self._start_time, timeout=timeout)
            except OSError as exc:
                raise MetricsError(f"Prometheus (PID {proc.pid}) did not stop: {exc}") from exc
        if self._given_dir is None and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ targets
    def targets_health(self) -> dict[str, dict[str, Any]]:
        """Per target address: ``health`` ("up", "down", "unknown"), ``lastError``, ``lastScrape``."""
        try:
            response = httpx.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5.0)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricsError(f"Prometheus at {self.url}: cannot read /api/v1/targets: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise MetricsError(f"Prometheus at {self.url}: unexpected /api/v1/targets answer {body!r:.200}")
        found: dict[str, dict[str, Any]] = {}
        for target in body["data"].get("activeTargets", []):
            labels = target.get("labels", {})
            if labels.get("job") == self.job and labels.get("instance") in self.targets.get(labels.get("version"), ()):
                found[labels["instance"]] = target
        return found

    def wait_for_targets_up(self, timeout: float = 15.0) -> None:
        """Wait until every target's last scrape succeeded; MetricsError naming the ones that did not."""
        last: dict[str, dict[str, Any]] = {}
        every = [(role, address) for role, addresses in self.targets.items() for address in addresses]

        def all_up() -> bool:
            last.clear()
            last.update(self.targets_health())
            return all(last.get(address, {}).get("health") == "up" for _, address in every)

        try:
            wait_until(all_up, timeout, 0.1, f"Prometheus targets of {self.url} to be up")
        except TimeoutError:
            states = "; ".join(
                f"{role} {address}: {last.get(address, {}).get('health', 'not listed')}"
                + (f" ({last[address]['lastError']})" if last.get(address, {}).get("lastError") else "")
                for role, address in every
            )
            raise MetricsError(f"Prometheus at {self.url}: targets not up within {timeout:g}s: {states}") from None

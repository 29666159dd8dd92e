"""Traffic control through a real NGINX weighted upstream.

A weight change is: render the upstream template into a staging copy of the configuration, check the
complete configuration with ``nginx -t``, replace the live upstream file atomically (``os.replace``),
send SIGHUP to the master, and confirm that only new workers accept connections and that they serve
the new generation. On any failure the previous file stays (or is put back and reloaded) and keeps
serving. Reading the weight asks NGINX itself (``/__canary/state``, rendered from the same file).

Layout of ``nginx_dir``::

    nginx.canary.conf, conf.d/upstream.conf.template   templates, copied from the template directory
    nginx.conf, conf.d/upstream.conf                   the live configuration
    staging/                                           candidate configuration checked by nginx -t
    logs/ access.jsonl canary_access.jsonl error.log   logs (canary_access: requests the canary served)
    logs/shadow_access.jsonl                           copies sent to the canary at a shadow stage
    temp/, nginx.pid, .weights.lock
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from canary_harness.deploy.pids import tail
from canary_harness.errors import TrafficError
from canary_harness.traffic.nginx_files import (
    MAIN_TEMPLATE,
    STATE_PATH,
    TEMPLATE_DIR_ENV,
    UPSTREAM_CONF,
    UPSTREAM_TEMPLATE,
    default_template_dir,
    new_generation,
    read_configured_weights,
    read_in_force,
)
from canary_harness.traffic.nginx_files import write_atomic as _write_atomic
from canary_harness.traffic.nginx_process import NginxProcess
from canary_harness.traffic.probe import SplitCount, probe_split
from canary_harness.traffic.protocol import InForce
from canary_harness.traffic.render import (
    DEFAULT_GROUP_HEADER,
    NO_SHADOW,
    Shadow,
    UpstreamWeights,
    parse_shadow_share,
    render_main,
    render_upstream,
)
from canary_harness.waiting import wait_until

__all__ = [
    "MAIN_TEMPLATE",
    "STATE_PATH",
    "TEMPLATE_DIR_ENV",
    "UPSTREAM_CONF",
    "UPSTREAM_TEMPLATE",
    "InForce",
    "NginxProcess",
    "NginxTrafficController",
    "SplitCount",
    "default_template_dir",
    "new_generation",
    "probe_split",
    "read_configured_weights",
    "read_in_force",
    "render_upstream",
]

log = logging.getLogger("canary_harness.traffic")


def _worker_user() -> str | None:
    # As root, NGINX would run workers as "nobody", which cannot enter a private (0700) run directory:
    # keep them on the invoking user. Unprivileged, the user directive is meaningless and left out.
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None


class NginxTrafficController:
    """TrafficController over a real NGINX master running from ``nginx_dir``."""

    def __init__(
        self,
        nginx_dir: Path,
        *,
        listen_port: int,
        production: str,
        canary: str,
        listen_host: str = "127.0.0.1",
        template_dir: Path | None = None,
        nginx_bin: str | None = None,
        worker_processes: str = "auto",
        reload_timeout: float = 10.0,
        http_timeout: float = 2.0,
        group_header: str = DEFAULT_GROUP_HEADER,
    ) -> None:
        """Bind to ``nginx_dir`` (created on ``prepare``); ``production``/``canary`` are ``host:port``;
        ``group_header`` is the header the access log records as each request's latency group."""
        self.dir = Path(nginx_dir).resolve()
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.production = production
        self.canary = canary
        self._template_dir = template_dir
        self.worker_processes = worker_processes
        self.reload_timeout = reload_timeout
        self.http_timeout = http_timeout
        self.group_header = group_header
        self.process = NginxProcess(self.dir, nginx_bin=nginx_bin)

    # ------------------------------------------------------------------ paths
    @property
    def base_url(self) -> str:
        """URL clients use to reach the service through NGINX."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self.listen_port}"

    @property
    def upstream_conf(self) -> Path:
        """The live upstream file NGINX includes."""
        return self.dir / UPSTREAM_CONF

    @property
    def upstream_template(self) -> Path:
        """The upstream template every weight change renders (the run directory's copy)."""
        return self.dir / UPSTREAM_TEMPLATE

    @property
    def canary_access_log(self) -> Path:
        """JSON lines, one per request the canary served."""
        return self.dir / "logs" / "canary_access.jsonl"

    @property
    def shadow_access_log(self) -> Path:
        """JSON lines, one per copy the shadow relay sent to the canary (status: the canary's answer)."""
        return self.dir / "logs" / "shadow_access.jsonl"

    @property
    def access_log(self) -> Path:
        """JSON lines, one per proxied request."""
        return self.dir / "logs" / "access.jsonl"

    # ------------------------------------------------------------------ setup and lifecycle
    def prepare(self, canary_weight: int = 0) -> None:
        """Lay out ``nginx_dir``: copy the templates, render nginx.conf and the upstream, run nginx -t."""
        if self.process.is_running():
            raise TrafficError(f"nginx already runs for {self.dir} (PID {self.process.pid}); stop it first")
        source = self._template_dir or default_template_dir()
        for name in (MAIN_TEMPLATE, UPSTREAM_TEMPLATE):
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source / name, self.dir / name)
            except OSError as exc:
                raise TrafficError(f"cannot copy NGINX template {source / name}: {exc}") from exc
        main = render_main(
            (self.dir / MAIN_TEMPLATE).read_text(),
            listen_host=self.listen_host,
            listen_port=self.listen_port,
            worker_processes=self.worker_processes,
            user=_worker_user(),
            group_header=self.group_header,
            source=str(self.dir / MAIN_TEMPLATE),
        )
        _write_atomic(self.dir / "nginx.conf", main)
        _write_atomic(self.upstream_conf, self._render(canary_weight, new_generation()))
        self.process.test()

    def start(self, canary_weight: int = 0, *, timeout: float = 10.0) -> int:
        """Prepare the directory, start NGINX and wait until it serves the split; returns the master PID."""
        self.prepare(canary_weight)
        pid = self.process.spawn(self.listen_host, self.listen_port)
        expected = self.configured_generation()

        def serving() -> bool:
            if self.process.exited():
                raise TrafficError(f"nginx exited:\n{tail(self.process.error_log)}")
            return self._reported_generation() == expected

        try:
            wait_until(serving, timeout, 0.02, f"nginx on {self.base_url} to serve generation {expected}")
        except (TimeoutError, TrafficError) as exc:
            self.process.stop(timeout=2.0)
            raise TrafficError(
                f"nginx (PID {pid}) did not come up on {self.base_url}: {exc}\n{tail(self.process.error_log)}"
            ) from exc
        log.info("nginx PID %d serving on %s, canary weight %d%%", pid, self.base_url, canary_weight)
        return pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop NGINX by its master PID (graceful, then SIGKILL). Idempotent."""
        self.process.stop(timeout)

    def is_running(self) -> bool:
        """True while the NGINX master runs."""
        return self.process.is_running()

    @property
    def pid(self) -> int | None:
        """The NGINX master's PID (None when it does not run)."""
        return self.process.pid

    @property
    def start_time(self) -> int | None:
        """The master's start time (guards against a reused PID)."""
        return self.process.start_time

    # ------------------------------------------------------------------ reading what is in force
    def weights_in_force(self) -> InForce:
        """Ask the running NGINX which split it has loaded. TrafficError if it does not answer."""
        return read_in_force(self.base_url, self.http_timeout)

    def canary_weight(self) -> int:
        """The canary percentage NGINX has loaded (asked from NGINX, not remembered)."""
        return self.weights_in_force().canary_weight

    def configured_weights(self) -> UpstreamWeights:
        """The weights written in the live upstream file (what the next reload would load)."""
        return read_configured_weights(self.upstream_conf, production=self.production, canary=self.canary)

    def configured_canary_weight(self) -> int | None:
        """The canary weight in the live upstream file (what the next reload would load)."""
        return self.configured_weights().canary

    def shadow_share(self) -> int:
        """The share of production's requests NGINX copies to the canary (0: none), asked from NGINX."""
        return self.weights_in_force().shadow_share

    def configured_shadow_share(self) -> int:
        """The shadow share in the live upstream file (what the next reload would load)."""
        try:
            text = self.upstream_conf.read_text()
        except OSError as exc:
            raise TrafficError(f"cannot read {self.upstream_conf}: {exc}") from exc
        return parse_shadow_share(text, source=str(self.upstream_conf))

    def config_text(self) -> str | None:
        """The live upstream file, for the stage record."""
        return self.upstream_conf.read_text(encoding="utf-8")

    def configured_generation(self) -> str:
        """The generation written in the live upstream file."""
        for line in self.upstream_conf.read_text().splitlines():
            if "$canary_generation" in line and '"' in line:
                return line.split('"')[1]
        raise TrafficError(f"{self.upstream_conf}: no $canary_generation map")

    # ------------------------------------------------------------------ changing the split
    def set_canary_weight(self, percent: int, *, reason: str = "") -> None:
        """Route ``percent`` % to the canary; returns once new workers serve it. TrafficError otherwise."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise TrafficError(f"canary weight {percent!r}: must be an integer in 0..100")
        with self._lock():
            self._apply(percent, reason)

    def set_shadow(self, share: int, *, drop: tuple[str, ...] = (), reason: str = "") -> None:
        """Serve users from production only and copy ``share`` % (1..100) of their requests to the canary,
        except the ``drop`` routes; returns once new workers serve it. TrafficError otherwise (the previous
        configuration then stays in force). ``set_canary_weight`` ends the shadow."""
        if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
            raise TrafficError(f"shadow share {share!r}: must be an integer percentage in 1..100")
        shadow = Shadow(share, tuple(drop))
        with self._lock():
            self._apply(0, reason, shadow)

    def _apply(self, percent: int, reason: str, shadow: Shadow = NO_SHADOW) -> None:
        started = time.monotonic()
        if not self.process.is_running():
            raise TrafficError(f"nginx is not running for {self.dir}: the weight was not changed")
        previous_text = self.upstream_conf.read_bytes()
        previous_generation = self.configured_generation()
        generation = new_generation()
        why = f" ({reason})" if reason else ""
        if shadow.share:
            log.info("set shadow: copy %d%% of production's requests to the canary%s", shadow.share, why)
        else:
            log.info("set canary weight %d%% (production %d%%)%s", percent, 100 - percent, why)

        candidate = self._render(percent, generation, shadow)
        staging = self.dir / "staging"
        (staging / "conf.d").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.dir / "nginx.conf", staging / "nginx.conf")
        _write_atomic(staging / UPSTREAM_CONF, candidate)
        log.info("rendered %s (generation %s)", staging / UPSTREAM_CONF, generation)
        self.process.test(staging / "nginx.conf")
        log.info("nginx -t: complete configuration with the new upstream is valid")

        old_workers = set(self.process.workers())
        os.replace(staging / UPSTREAM_CONF, self.upstream_conf)
        log.info("replaced %s atomically", self.upstream_conf)
        try:
            master = self.process.reload()
            log.info("reload: SIGHUP sent to nginx master PID %d", master)
            self._confirm(generation, old_workers)
        except TrafficError as exc:
            if percent == 0 and not shadow.share:
                # A rollback: putting the previous (non-zero) file back would hand the canary its share
                # again at the next reload. The 0 % file stays; NGINX loads it at its next reload.
                raise TrafficError(
                    f"nginx did not confirm canary weight 0% ({exc}); the 0 % configuration stays in "
                    f"{self.upstream_conf} (the previous one is not restored)"
                ) from exc
            try:
                self._restore(previous_text, previous_generation)
            except TrafficError as restore_exc:
                raise TrafficError(
                    f"nginx did not apply canary weight {percent}% ({exc}) and restoring the previous "
                    f"configuration failed too: {restore_exc}"
                ) from exc
            raise TrafficError(
                f"nginx did not apply canary weight {percent}%: {exc}; the previous configuration "
                f"(generation {previous_generation}) is back in force"
            ) from exc
        log.info(
            "in force: production %d%% / canary %d%%, generation %s, workers %s (%.0f ms)",
            100 - percent,
            percent,
            generation,
            self.process.workers(),
            (time.monotonic() - started) * 1000,
        )

    def _render(self, percent: int, generation: str, shadow: Shadow = NO_SHADOW) -> str:
        try:
            template = self.upstream_template.read_text()
        except OSError as exc:
            raise TrafficError(f"cannot read the upstream template {self.upstream_template}: {exc}") from exc
        return render_upstream(
            template,
            100 - percent,
            percent,
            production=self.production,
            canary=self.canary,
            generation=generation,
            shadow=shadow,
            source=str(self.upstream_template),
        )

    def _reported_generation(self) -> str | None:
        """The generation NGINX reports, None while it does not answer."""
        try:
            return self.weights_in_force().generation
        except TrafficError:
            return None

    def _confirm(self, generation: str, old_workers: set[int]) -> None:
        """Wait until no old worker accepts connections any more and NGINX reports ``generation``."""

        def new_split_serves() -> bool:
            if not self.process.is_running():
                raise TrafficError("the nginx master exited during the reload")
            workers = set(self.process.workers())
            if not workers or workers & old_workers:
                return False
            return self._reported_generation() == generation

        try:
            wait_until(
                new_split_serves,
                self.reload_timeout,
                0.01,
                f"new nginx workers serving generation {generation}",
            )
        except TimeoutError as exc:
            raise TrafficError(f"{exc}\n{tail(self.process.error_log, 10)}") from exc

    def _restore(self, previous_text: bytes, previous_generation: str) -> None:
        """Put the previous upstream file back and make sure NGINX serves it again."""
        _write_atomic(self.upstream_conf, previous_text.decode("utf-8"))
        log.warning("restored the previous upstream (generation %s)", previous_generation)
        if not self.process.is_running():
            return
        # Reload even if NGINX still reports the previous generation: a slow master could otherwise
        # apply the refused file after we gave up on it.
        old_workers = set(self.process.workers())
        self.process.reload()
        self._confirm(previous_generation, old_workers)

    @contextmanager
    def _lock(self, timeout: float = 30.0) -> Iterator[None]:
        """One weight change at a time per NGINX directory, across processes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".weights.lock").open("w") as handle:

            def acquired() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            try:
                wait_until(acquired, timeout, 0.05, f"the weight lock {self.dir / '.weights.lock'}")
            except TimeoutError as exc:
                raise TrafficError(str(exc)) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

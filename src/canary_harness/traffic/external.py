"""Traffic control through an NGINX the harness did not start (``[traffic] nginx = "external"``).

The user's NGINX (the compose service ``fragrance-ai-nginx``, or the host's system NGINX) includes the
runbook's ``conf.d/upstream.conf``; the harness writes that one file and nothing else. A weight change:

1. render the repository's upstream template with a new generation;
2. replace ``<nginx_dir>/conf.d/upstream.conf`` atomically (``os.replace``; a bind-mounted directory
   shows the new file to the container at once);
3. ``nginx -t`` on the user's complete configuration (``docker exec CONTAINER nginx -t`` for a
   container); if it refuses, the previous file is put back before anything reloads it;
4. reload: ``docker kill -s HUP CONTAINER`` or ``nginx -s reload``;
5. confirm: none of the workers from before the reload accepts connections any more (the master's
   children, found through ``/proc``: the container's master is its PID 1, the host's is in its pid
   file) and ``<nginx_url>/__canary/state`` reports the new generation. Otherwise the previous file is
   put back, NGINX reloaded again, and TrafficError says so.

The user's configuration must include ``conf.d/*.conf`` (or the file) inside ``http {}`` and expose the
``/__canary/state`` location of nginx/nginx.canary.conf on loopback, which reads the maps of the include.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from canary_harness.config import TrafficSettings
from canary_harness.deploy import pids
from canary_harness.errors import TrafficError
from canary_harness.traffic.nginx_files import (
    UPSTREAM_CONF,
    UPSTREAM_TEMPLATE,
    default_template_dir,
    new_generation,
    read_configured_weights,
    read_in_force,
)
from canary_harness.traffic.protocol import InForce
from canary_harness.traffic.render import UpstreamWeights, render_upstream
from canary_harness.waiting import wait_until

log = logging.getLogger("canary_harness.traffic")

COMMAND_TIMEOUT_S = 30.0


class ExternalNginxController:
    """TrafficController over a running NGINX that someone else started and owns."""

    def __init__(self, settings: TrafficSettings, *, template_dir: Path | None = None, docker: str = "docker") -> None:
        """Args:
        settings: the resolved ``[traffic]`` section (``nginx = "external"``).
        template_dir: where ``conf.d/upstream.conf.template`` is read (default: ``default_template_dir()``).
        docker: the docker CLI, for a containerised NGINX.
        """
        if settings.nginx != "external" or settings.nginx_dir is None or settings.nginx_url is None:
            raise TrafficError(f"external NGINX control needs nginx = 'external', nginx_dir and nginx_url: {settings}")
        self.settings = settings
        self.dir = settings.nginx_dir
        self._base_url = settings.nginx_url.rstrip("/")
        self.production = settings.production
        self.canary = settings.canary
        self._template_dir = template_dir
        self._docker = docker

    @classmethod
    def for_services(
        cls, settings: TrafficSettings, *, production_url: str, canary_url: str
    ) -> ExternalNginxController:
        """The controller routing to the services at these URLs (their ``host:port`` as upstream servers)."""

        def address(url: str) -> str:
            return url.split("://", 1)[-1].rstrip("/")

        return cls(dataclasses.replace(settings, production=address(production_url), canary=address(canary_url)))

    @property
    def base_url(self) -> str:
        """The user's NGINX as clients reach it (``[traffic] nginx_url``)."""
        return self._base_url

    @property
    def upstream_conf(self) -> Path:
        """The one file the harness writes: ``<nginx_dir>/conf.d/upstream.conf``."""
        return self.dir / UPSTREAM_CONF

    # ------------------------------------------------------------------ reading
    def weights_in_force(self) -> InForce:
        """The split the user's NGINX reports (``/__canary/state``); TrafficError if it does not answer."""
        return read_in_force(self.base_url)

    def canary_weight(self) -> int:
        """The canary percentage in force, asked from NGINX."""
        return self.weights_in_force().canary_weight

    def shadow_share(self) -> int:
        """The share copied to the canary, as the user's NGINX reports it (0 when it has no shadow location)."""
        return self.weights_in_force().shadow_share

    def set_shadow(self, share: int, *, drop: tuple[str, ...] = (), reason: str = "") -> None:
        """Refused: a shadow stage needs the mirror relay of the harness's own NGINX (nginx/nginx.canary.conf),
        which the user's configuration does not have; nothing is changed."""
        raise TrafficError(
            f"shadow share {share}% ({reason or 'stage 0'}): the external NGINX at {self.base_url} has no shadow "
            "relay (the /__canary/shadow locations of nginx/nginx.canary.conf); run stage 0 with the managed "
            'NGINX ([traffic] nginx = "managed") or start at stage 1'
        )

    def configured_weights(self) -> UpstreamWeights:
        """The weights written in the upstream file."""
        return read_configured_weights(self.upstream_conf, production=self.production, canary=self.canary)

    def configured_canary_weight(self) -> int | None:
        """The canary weight in the upstream file (what the next reload would load)."""
        return self.configured_weights().canary

    def config_text(self) -> str | None:
        """The upstream file the harness wrote, for the stage record (None before the first change)."""
        try:
            return self.upstream_conf.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TrafficError(f"cannot read {self.upstream_conf}: {exc}") from exc

    # ------------------------------------------------------------------ NGINX commands
    def _command(self, argv: list[str], what: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrafficError(f"{what}: {' '.join(argv)} failed: {exc}") from exc
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise TrafficError(f"{what}: {' '.join(argv)} exited {done.returncode}: {output}")
        return output

    def test_config(self) -> str:
        """``nginx -t`` on the user's complete configuration, where NGINX runs; TrafficError if refused."""
        container = self.settings.nginx_container
        if container:
            argv = [self._docker, "exec", container, "nginx", "-t"]
        else:
            argv = [self.settings.nginx_bin, "-t"]
        return self._command(argv, "nginx -t")

    def master_pid(self) -> int:
        """The NGINX master's PID on this host: the container's PID 1, or the host's pid file."""
        container = self.settings.nginx_container
        if container:
            text = self._command([self._docker, "inspect", "--format", "{{.State.Pid}}", container], "inspect")
            where = f"container {container}"
        else:
            try:
                text = self.settings.nginx_pid_file.read_text()
            except OSError as exc:
                raise TrafficError(f"cannot read the NGINX pid file {self.settings.nginx_pid_file}: {exc}") from exc
            where = str(self.settings.nginx_pid_file)
        text = text.strip()
        if not text.isdigit() or int(text) == 0:
            raise TrafficError(f"NGINX master of {where}: no running process ({text!r})")
        return int(text)

    def workers(self) -> set[int]:
        """PIDs of the workers accepting connections (those shutting down after a reload excluded)."""
        master = self.master_pid()
        return {pid for pid in pids.children_of(master) if pids.cmdline(pid) == "nginx: worker process"}

    def reload(self) -> None:
        """SIGHUP to the container (its PID 1 is the NGINX master), or ``nginx -s reload`` on the host."""
        container = self.settings.nginx_container
        if container:
            self._command([self._docker, "kill", "-s", "HUP", container], "reload")
        else:
            self._command([self.settings.nginx_bin, "-s", "reload"], "reload")

    # ------------------------------------------------------------------ changing the split
    def set_canary_weight(self, percent: int, *, reason: str = "") -> None:
        """Route ``percent`` % to the canary; returns once NGINX reports the new generation."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise TrafficError(f"canary weight {percent!r}: must be an integer in 0..100")
        with self._lock():
            self._apply(percent, reason)

    def _apply(self, percent: int, reason: str) -> None:
        template_dir = self._template_dir or default_template_dir()
        try:
            template = (template_dir / UPSTREAM_TEMPLATE).read_text()
            previous = self.upstream_conf.read_bytes() if self.upstream_conf.exists() else None
        except OSError as exc:
            raise TrafficError(f"external NGINX: {exc}") from exc
        generation = new_generation()
        candidate = render_upstream(
            template, 100 - percent, percent, production=self.production, canary=self.canary,
            generation=generation, source=str(template_dir / UPSTREAM_TEMPLATE),
        )  # fmt: skip
        # Fails early (before any file changes) when the user's NGINX cannot be reached at all.
        before = self.weights_in_force().generation
        old_workers = self.workers()
        why = f" ({reason})" if reason else ""
        log.info("external nginx: set canary weight %d%%%s, generation %s", percent, why, generation)
        _write_atomic(self.upstream_conf, candidate.encode())
        try:
            self.test_config()
            log.info("external nginx: nginx -t accepts %s", self.upstream_conf)
        except TrafficError as exc:
            self._put_back(previous)
            raise TrafficError(f"{exc}; {self.upstream_conf} restored (generation {before} still in force)") from exc
        try:
            self.reload()
            self._confirm(generation, old_workers)
        except TrafficError as exc:
            self._put_back(previous)
            try:
                old_workers = self.workers()
                self.reload()
                self._confirm(before, old_workers)
            except TrafficError as again:
                raise TrafficError(
                    f"external NGINX did not apply canary weight {percent}% ({exc}) and restoring the "
                    f"previous file did not take effect either: {again}"
                ) from exc
            raise TrafficError(
                f"external NGINX did not apply canary weight {percent}%: {exc}; the previous file "
                f"(generation {before}) is back in force"
            ) from exc
        log.info("external nginx: in force production %d%% / canary %d%%, generation %s",
                 100 - percent, percent, generation)  # fmt: skip

    def _confirm(self, generation: str, old_workers: set[int]) -> None:
        """Wait until only new workers accept connections and NGINX reports ``generation``."""

        def serving() -> bool:
            workers = self.workers()
            if not workers or workers & old_workers:
                return False
            try:
                return self.weights_in_force().generation == generation
            except TrafficError:
                return False

        try:
            wait_until(serving, self.settings.reload_timeout, 0.02,
                       f"{self.base_url}/__canary/state to report generation {generation}")  # fmt: skip
        except TimeoutError as exc:
            raise TrafficError(str(exc)) from exc

    def _put_back(self, previous: bytes | None) -> None:
        """The last good upstream file again (or none, if there was none)."""
        if previous is None:
            self.upstream_conf.unlink(missing_ok=True)
        else:
            _write_atomic(self.upstream_conf, previous)
        log.warning("external nginx: restored the previous %s", self.upstream_conf)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One weight change at a time per upstream file, across processes (the lock lives in the run
        directory: nothing but the upstream file is written into the user's configuration)."""
        lock_dir = self.settings.lock_dir
        lock_dir.mkdir(parents=True, exist_ok=True)
        with (lock_dir / ".external-weights.lock").open("w") as handle:

            def acquired() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            try:
                wait_until(acquired, 30.0, 0.05, f"the weight lock in {lock_dir}")
            except TimeoutError as exc:
                raise TrafficError(str(exc)) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a hidden temporary file (not matched by ``*.conf``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Keep the mode of the file it replaces (NGINX workers may need to read it).
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TrafficError(f"cannot write {path}: {exc}") from exc

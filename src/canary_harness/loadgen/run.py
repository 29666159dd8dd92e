"""LoadRun: one stage's load, started in the background and stopped with its stats read back."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol

from canary_harness.errors import ConfigError, LoadError
from canary_harness.loadgen.locust_engine import LocustEngine, locust_available
from canary_harness.loadgen.settings import LoadSettings
from canary_harness.loadgen.stats import LoadStats


class LoadEngine(Protocol):
    """A load engine: starts at once, runs in the background, stops with its stats."""

    name: str

    def start(self) -> None:
        """Begin sending load; returns at once."""

    def running(self) -> bool:
        """True while load is being sent."""

    def stop(self, timeout: float) -> LoadStats:
        """End the run, release every resource, return the stats."""

    def pids(self) -> list[int]:
        """Processes the engine started (none for in-process engines)."""


def resolve_engine(settings: LoadSettings) -> str:
    """The engine a run will use: "auto" means locust when it is installed, else builtin."""
    if settings.engine == "builtin":
        return "builtin"
    if locust_available():
        return "locust"
    if settings.profile == "locustfile":
        raise LoadError(
            f'load profile "locustfile" ({settings.locustfile}) needs locust, which is not importable here; '
            f"install it (pip install 'canary-harness[load]')"
        )
    if settings.engine == "locust" or settings.workers:
        raise LoadError(
            f"load engine {settings.engine!r} with {settings.workers} workers needs locust, "
            f"which is not importable here; install it (pip install 'canary-harness[load]') "
            f"or use engine 'builtin' without workers"
        )
    return "builtin"


class LoadRun:
    """Load against ``base_url`` for ``duration_s`` seconds with ``settings``; stats land in ``stats_dir``.

    ``start()`` returns at once (idempotent); the run ends by itself at its time or request limit, or
    when ``stop()`` is called. ``stop()`` always reaps every process of the run by PID before it parses
    the stats, so nothing is left running even when it raises. As a context manager, entering starts
    the run and leaving stops it (also on exceptions); the stats are then in ``run.stats``.
    """

    def __init__(self, base_url: str, duration_s: float, settings: LoadSettings, stats_dir: Path) -> None:
        url = str(base_url).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"load target URL {base_url!r} (LoadRun base_url): must start with http:// or https://")
        if not duration_s > 0:
            raise ConfigError(
                f"load duration {duration_s!r} (LoadRun duration_s): must be a positive number of seconds"
            )
        self.base_url, self.duration_s, self.settings = url, float(duration_s), settings
        self.stats_dir = Path(stats_dir).resolve()  # the locust subprocess runs in another cwd
        self.stats: LoadStats | None = None
        self._engine: LoadEngine | None = None

    @property
    def engine(self) -> str | None:
        """The engine in use ("locust" or "builtin"), None before start."""
        return self._engine.name if self._engine is not None else None

    def pids(self) -> list[int]:
        """PIDs of the processes this run started (empty for the builtin engine or before start)."""
        return self._engine.pids() if self._engine is not None else []

    def start(self) -> None:
        """Start sending load in the background; a second call does nothing."""
        if self._engine is not None:
            return
        engine: LoadEngine
        if resolve_engine(self.settings) == "locust":
            engine = LocustEngine(self.base_url, self.duration_s, self.settings, self.stats_dir)
        else:
            from canary_harness.loadgen.builtin import BuiltinEngine  # httpx threads: only when used

            engine = BuiltinEngine(self.base_url, self.duration_s, self.settings, self.stats_dir)
        self._engine = engine
        engine.start()

    def running(self) -> bool:
        """True while load is being sent."""
        return self._engine is not None and self.stats is None and self._engine.running()

    def stop(self, timeout: float = 30.0) -> LoadStats:
        """End the run now (or collect it if it already ended), reap its processes, return its stats.

        A run never started gives empty stats; a second call returns the same stats.
        """
        if self.stats is not None:
            return self.stats
        if self._engine is None:
            self.stats = LoadStats.empty(self.settings.engine)
            return self.stats
        self.stats = self._engine.stop(timeout)
        return self.stats

    def __enter__(self) -> LoadRun:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.stats is not None:
            return
        if exc is None:
            self.stop()
            return
        try:
            self.stop()
        except LoadError:
            pass  # the processes are reaped either way; the original exception is the one to see

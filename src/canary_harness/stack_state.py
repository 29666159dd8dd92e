"""The stack's record: ``<run_dir>/state.json``, what a stack started (PIDs with their start times, ports,
versions, log paths, the NGINX directory), written atomically and private, read back by any later command."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.errors import StackError
from canary_harness.private import private_dir, write_private

STATE_FILE = "state.json"
STATE_FORMAT = 1


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class NginxRecord:
    """The NGINX master of a stack and the two upstream addresses it routes to."""

    dir: Path
    host: str
    port: int
    production: str
    canary: str
    pid: int | None = None
    pid_start_time: int | None = None
    # Which router runs there: "managed" (the harness's NGINX) or "memory" (the in-process test double).
    router: str = "managed"

    @property
    def base_url(self) -> str:
        """URL of the service through NGINX."""
        return f"http://{self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "dir": str(self.dir),
            "host": self.host,
            "port": self.port,
            "production": self.production,
            "canary": self.canary,
            "pid": self.pid,
            "pid_start_time": self.pid_start_time,
            "router": self.router,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> NginxRecord:
        """Inverse of ``to_json``; StackError naming ``source`` when malformed."""
        try:
            return cls(
                dir=Path(str(data["dir"])),
                host=str(data["host"]),
                port=int(data["port"]),
                production=str(data["production"]),
                canary=str(data["canary"]),
                pid=_opt_int(data.get("pid")),
                pid_start_time=_opt_int(data.get("pid_start_time")),
                router=str(data.get("router", "managed")),  # absent from state files written before it
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StackError(f"{source}: invalid nginx entry: {exc!r}") from exc


@dataclass(frozen=True)
class StackState:
    """What a stack started, as recorded in ``<run_dir>/state.json``."""

    run_dir: Path
    nginx: NginxRecord | None = None
    production: ServiceHandle | None = None
    canary: ServiceHandle | None = None
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @property
    def state_file(self) -> Path:
        """Where this state is stored."""
        return self.run_dir / STATE_FILE

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": STATE_FORMAT,
            "run_dir": str(self.run_dir),
            "started_at": self.started_at,
            "nginx": self.nginx.to_json() if self.nginx else None,
            "production": self.production.to_json() if self.production else None,
            "canary": self.canary.to_json() if self.canary else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> StackState:
        """Inverse of ``to_json``; StackError naming ``source`` when malformed."""
        if not isinstance(data, Mapping) or data.get("format") != STATE_FORMAT:
            raise StackError(f"{source}: not a stack state file of format {STATE_FORMAT}")

        def service(role: str) -> ServiceHandle | None:
            entry = data.get(role)
            return ServiceHandle.from_json(entry, source) if entry else None

        try:
            return cls(
                run_dir=Path(str(data["run_dir"])),
                started_at=str(data.get("started_at", "")),
                nginx=NginxRecord.from_json(data["nginx"], source) if data.get("nginx") else None,
                production=service("production"),
                canary=service("canary"),
            )
        except KeyError as exc:
            raise StackError(f"{source}: missing key {exc}") from exc

    def save(self) -> None:
        """Write the state atomically (temporary file + rename), 0600, fsynced with its directory."""
        private_dir(self.run_dir)
        write_private(self.state_file, json.dumps(self.to_json(), indent=2) + "\n")


def load_state(run_dir: Path) -> StackState | None:
    """The state recorded in ``run_dir/state.json``, None if there is none. StackError if unreadable."""
    path = Path(run_dir) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StackError(f"stack state {path}: unreadable: {exc}") from exc
    return StackState.from_json(data, str(path))

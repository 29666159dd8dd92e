"""The files and endpoints shared by the NGINX controllers (managed and external): template locations, the
live upstream file, atomic writes, generations, and the split NGINX reports on ``/__canary/state``."""

from __future__ import annotations

import functools
import os
import secrets
import time
from pathlib import Path

import httpx

from canary_harness.errors import TrafficError
from canary_harness.traffic.protocol import InForce
from canary_harness.traffic.render import UpstreamWeights, parse_upstream_weights

MAIN_TEMPLATE = "nginx.canary.conf"
UPSTREAM_TEMPLATE = "conf.d/upstream.conf.template"
UPSTREAM_CONF = "conf.d/upstream.conf"
STATE_PATH = "/__canary/state"
TEMPLATE_DIR_ENV = "CANARY_NGINX_TEMPLATES"


def default_template_dir() -> Path:
    """Where the NGINX templates are read from.

    ``$CANARY_NGINX_TEMPLATES`` if set, else ``./nginx`` when it holds the templates, else the ``nginx/``
    directory of the source checkout this package is installed from.
    """
    env = os.environ.get(TEMPLATE_DIR_ENV, "")
    candidates = [Path(env)] if env else [Path("nginx"), Path(__file__).resolve().parents[3] / "nginx"]
    for candidate in candidates:
        if (candidate / MAIN_TEMPLATE).is_file() and (candidate / UPSTREAM_TEMPLATE).is_file():
            return candidate.resolve()
    where = f"${TEMPLATE_DIR_ENV}={env!r}" if env else " or ".join(str(c) for c in candidates)
    raise TrafficError(f"NGINX templates {MAIN_TEMPLATE} and {UPSTREAM_TEMPLATE} not found in {where}")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and ``os.replace``, fsynced
    (the file, then the directory entry), so a crash leaves the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@functools.cache
def _http() -> httpx.Client:
    # One client per process: building one sets up TLS contexts (~50 ms), which loopback HTTP never uses.
    return httpx.Client(verify=False)


def new_generation() -> str:
    """A unique label for a rendered upstream: time plus random, so that NGINX's answer proves the reload."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


def read_in_force(base_url: str, timeout: float = 2.0) -> InForce:
    """Ask the NGINX at ``base_url`` which split it has loaded (``/__canary/state``); TrafficError if it
    does not answer."""
    url = base_url.rstrip("/") + STATE_PATH
    try:
        # A fresh connection each time, so the answer comes from a worker accepting new clients.
        response = _http().get(url, timeout=timeout, headers={"Connection": "close"})
        response.raise_for_status()
        data = response.json()
        return InForce(
            generation=str(data["generation"]),
            production_weight=int(data["production_weight"]),
            canary_weight=int(data["canary_weight"]),
            production=str(data["production"]),
            canary=str(data["canary"]),
            # An NGINX configured before shadow stages existed (e.g. a user's) copies nothing.
            shadow_share=int(data.get("shadow_share", 0)),
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise TrafficError(f"cannot read the split in force from {url}: {exc}") from exc


def read_configured_weights(upstream_conf: Path, *, production: str, canary: str) -> UpstreamWeights:
    """The weights written in an upstream file (what the next reload would load); TrafficError if unreadable.

    Shared by the managed and the external controller: both keep their split in ``conf.d/upstream.conf``.
    """
    try:
        text = upstream_conf.read_text()
    except FileNotFoundError as exc:
        raise TrafficError(f"no upstream configuration at {upstream_conf}") from exc
    except OSError as exc:
        raise TrafficError(f"cannot read {upstream_conf}: {exc}") from exc
    return parse_upstream_weights(text, production=production, canary=canary, source=str(upstream_conf))

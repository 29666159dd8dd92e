"""What service is released: a target profile, the layer of settings below the user's canary.toml.

A profile is a TOML document with the same tables as canary.toml (``[judge]`` thresholds and checks,
``[metrics]``, ``[load]``, ``[[smoke]]`` steps) plus ``[target]``: how the process backend starts a
version (``command``, an argv with ``{version}``, ``{host}``, ``{port}``, ``{log}`` and ``{python}``
holes) and how the service answers its health check (``[target.health]``); ``[target.docker]`` is how the
docker backend runs a version (:mod:`canary_harness.deploy.container_target`), ``[target.compose]`` how the
compose backend does (:mod:`canary_harness.deploy.compose_target`). The profile is named by
``--canary-target`` (a shipped profile's name or a file), ``CANARY_TARGET``, or ``[target] profile`` in
canary.toml; canary.toml's own tables then override the profile's key by key. Without a profile the
built-in defaults are fragrance-ai's, and ``profiles/fragrance-ai.toml`` spells them out.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from canary_harness.configuration.parsers import table_of
from canary_harness.deploy.compose_target import ComposeTarget
from canary_harness.deploy.container_target import ContainerTarget
from canary_harness.deploy.health import FRAGRANCE_PROBE, HealthProbe, probe_from_mapping
from canary_harness.errors import ConfigError

PROFILES = ("fragrance-ai", "generic-http")
_TARGET_KEYS = ("name", "profile", "command", "health", "docker", "compose")


@dataclass(frozen=True)
class TargetSettings:
    """The ``[target]`` table: the service's name, the argv that starts it, its health probe, and (container
    backends) its image and its compose services; fragrance-ai's own images and runbook files when
    ``docker`` / ``compose`` are None."""

    name: str = "fragrance-ai"
    command: tuple[str, ...] = ()
    probe: HealthProbe = FRAGRANCE_PROBE
    docker: ContainerTarget | None = None
    compose: ComposeTarget | None = None

    def check_backend(self, backend: str, source: str) -> None:
        """ConfigError unless ``backend`` can start this target: the container backends start fragrance-ai's
        release images and runbook services unless ``[target.docker]`` / ``[target.compose]`` name others,
        whose compose files must exist."""
        if backend == "compose" and self.compose is not None:
            self.compose.check_files()
            return
        if self.name == "fragrance-ai" and not self.command and self.docker is None:
            return
        if backend == "docker" and self.docker is None:
            raise ConfigError(
                f"target {self.name!r} ({source}) has no [target.docker] table, which the docker backend needs: "
                "give its image, e.g. image = 'my-service:{version}' (docs/your-service.md)"
            )
        if backend == "compose":
            raise ConfigError(
                f"target {self.name!r} ({source}) has no [target.compose] table, which the compose backend needs: "
                "give its compose files and each role's service, e.g. files = ['docker-compose.yml'], "
                "canary = { service = 'my-service-canary' } (docs/your-service.md)"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> TargetSettings:
        """Settings from a ``[target]`` table; ConfigError names the key, its value and ``source``."""
        data = table_of(data, "target", _TARGET_KEYS, source)
        name = data.get("name", cls.name)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"[target] name = {name!r} ({source}): must be a non-empty string")
        command = data.get("command", [])
        if not isinstance(command, list) or not all(isinstance(part, str) and part for part in command):
            raise ConfigError(f"[target] command = {command!r} ({source}): must be a list of non-empty strings")
        if command and not any("{port}" in part for part in command):
            raise ConfigError(
                f"[target] command = {command!r} ({source}): must use {{port}} (the harness picks each instance's port)"
            )
        health = data.get("health", {})
        if not isinstance(health, Mapping):
            raise ConfigError(f"[target.health] ({source}): must be a table, got {health!r}")
        probe = probe_from_mapping(health, f"{source} [target.health]") if health else FRAGRANCE_PROBE
        if data.get("profile"):
            profile_path(str(data["profile"]), f"{source}, key 'profile'")  # a missing profile is named now
        file = source.removesuffix(" [target]")
        docker = data.get("docker")
        container = ContainerTarget.from_mapping(docker, file) if docker is not None else None
        compose = data.get("compose")
        services = ComposeTarget.from_mapping(compose, file) if compose is not None else None
        return cls(name=name, command=tuple(command), probe=probe, docker=container, compose=services)


def profile_path(ref: str, source: str) -> Path:
    """The file of a profile: a shipped profile's name, or a path; ConfigError naming ``ref`` otherwise."""
    if ref in PROFILES:
        return Path(str(resources.files("canary_harness").joinpath("profiles", f"{ref}.toml")))
    path = Path(ref)
    if not path.is_file():
        raise ConfigError(
            f"target profile {ref!r} ({source}): neither a shipped profile ({', '.join(PROFILES)}) nor a file"
        )
    return path


def with_profile(document: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """``profile`` overridden by ``document``: table by table, key by key; arrays and values replaced."""
    merged: dict[str, Any] = {
        name: dict(value) if isinstance(value, Mapping) else value for name, value in profile.items()
    }
    for name, value in document.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    target = merged.get("target")
    if isinstance(target, dict):
        target.pop("profile", None)  # chosen; the layered document no longer names it
    return merged


def profile_ref(document: Mapping[str, Any], target: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(profile, where it came from): the flag, else CANARY_TARGET, else canary.toml ``[target] profile``."""
    if target:
        return target, "--canary-target"
    if environ.get("CANARY_TARGET"):
        return environ["CANARY_TARGET"], "environment CANARY_TARGET"
    section = document.get("target", {})
    if isinstance(section, Mapping) and section.get("profile"):
        return str(section["profile"]), "canary.toml [target] profile"
    return None


def load_config(
    path: Path | None, *, target: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """canary.toml (``path``, else ./canary.toml if present) layered over its target profile, if one is named."""
    from canary_harness.config import load_toml  # config builds StackSettings from TargetSettings

    document = load_toml(path)
    ref = profile_ref(document, target, os.environ if environ is None else environ)
    if ref is None:
        return document
    name, source = ref
    file = profile_path(name, source)
    try:
        profile = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"target profile {str(file)!r} ({source}): {exc}") from exc
    if "profile" in profile.get("target", {}):
        raise ConfigError(f"target profile {str(file)!r}: a profile cannot name another profile")
    return with_profile(document, profile)

"""How the docker backend runs one version of a target: the profile's ``[target.docker]`` table.

fragrance-ai's images (``fragrance-ai-app:<version>``, built by ``canary images build``) need no table. Any
other service names its image as a template, ``image = "hello-service:{version}"``, and may give the
container's argv (``command``, the image's ENTRYPOINT is kept) and environment (``env``) as templates too,
with the holes ``{version}``, ``{host}``, ``{port}`` and ``{log}`` (the service's own log file, in the run
directory's log directory mounted into the container). ``user`` (default: the invoking user's uid:gid, so
that the files the service writes belong to them) and ``workdir`` are passed to the engine as they are.

Images are never pulled (there is no registry): an image that is not on the engine is refused before any
container starts, with the image, the version and the profile key in the message.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary_harness.configuration.parsers import table_of
from canary_harness.errors import BackendError, ConfigError

HOLES = ("version", "host", "port", "log")
KEYS = ("image", "command", "env", "user", "workdir")
# A Docker image reference: [registry/]path[:tag] (lower-case path components, tag of word characters).
_NAME_PART = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_IMAGE_RE = re.compile(rf"^{_NAME_PART}(?::\d+)?(?:/{_NAME_PART})*(?::\w[\w.-]{{0,127}})?$")
# An environment variable's name (also what docker-compose interpolates).
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
# Where the run directory's log directory appears inside every container the harness starts.
CONTAINER_LOG_DIR = "/canary-logs"
# Values for checking a template at load: what a version label may hold (parse_version) and a port.
_SAMPLE = {"version": "v0.0.1", "host": "127.0.0.1", "port": "8000", "log": f"{CONTAINER_LOG_DIR}/canary.jsonl"}


@dataclass(frozen=True)
class ContainerTarget:
    """The ``[target.docker]`` table: the image template and the container's argv, env, user and workdir."""

    image: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    # Where the table was read (file and table), for messages about a missing image.
    source: str = field(default="[target.docker]", compare=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> ContainerTarget:
        """The table's settings; ConfigError naming ``source`` (file and table), the key and its value."""
        data = table_of(data, "target.docker", KEYS, source)
        image = data.get("image")
        if not isinstance(image, str) or not image:
            raise ConfigError(f"[target.docker] image = {image!r} ({source}): required, e.g. 'my-service:{{version}}'")
        check_image_template(image, "[target.docker]", source)
        command = data.get("command", [])
        if not isinstance(command, list) or not all(isinstance(part, str) and part for part in command):
            raise ConfigError(f"[target.docker] command = {command!r} ({source}): must be a list of non-empty strings")
        for part in command:
            _check_template(part, "command", source, shown=command)
        env = data.get("env", {})
        if not isinstance(env, Mapping):
            raise ConfigError(f'[target.docker] env = {env!r} ({source}): must be a table of NAME = "value"')
        for name, value in env.items():
            if not ENV_NAME_RE.match(name) or not isinstance(value, str):
                raise ConfigError(
                    f"[target.docker] env {name} = {value!r} ({source}): names are letters, digits, '_'; values strings"
                )
            _check_template(value, f"env {name}", source)
        texts = [image, *command, *env.values()]
        if not any("{version}" in text for text in texts):
            raise ConfigError(
                f"[target.docker] ({source}): {{version}} appears in none of image, command, env: every version "
                "would run the same container"
            )
        user = data.get("user")
        if user is not None and (not isinstance(user, str) or not _USER_RE.match(user)):
            raise ConfigError(f"[target.docker] user = {user!r} ({source}): must be 'uid', 'uid:gid' or a user name")
        workdir = data.get("workdir")
        if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/")):
            raise ConfigError(
                f"[target.docker] workdir = {workdir!r} ({source}): must be an absolute path in the image"
            )
        return cls(image=image, command=tuple(command), env=dict(env), user=user, workdir=workdir, source=source)

    def image_for(self, version: str) -> str:
        """The image of ``version``; BackendError if the version makes it an invalid reference."""
        return image_of_version(self.image, version, f"[target.docker] image = {self.image!r} ({self.source})")

    def argv(self, values: Mapping[str, str]) -> list[str]:
        """The container's argv (after the image's ENTRYPOINT) with the holes filled from ``values``."""
        return [part.format(**values) for part in self.command]

    def environment(self, values: Mapping[str, str]) -> dict[str, str]:
        """The container's environment from the table, its holes filled from ``values``."""
        return {name: value.format(**values) for name, value in self.env.items()}


def check_image_template(image: str, table: str, source: str, holes: tuple[str, ...] = HOLES) -> None:
    """``image`` is an image reference once its holes are filled; ConfigError naming ``table``, the value
    and ``source`` otherwise."""
    _check_template(image, "image", source, table=table, holes=holes)
    if not _IMAGE_RE.match(image.format(**_SAMPLE)):
        raise ConfigError(
            f"{table} image = {image!r} ({source}): not an image reference such as "
            "'my-service:{version}' (lower-case name, optional ':tag')"
        )


def image_of_version(template: str, version: str, where: str) -> str:
    """``template`` with ``version`` filled in; BackendError naming ``where`` (the table's key and file) if
    that version makes it an invalid image reference."""
    image = template.format(**{**_SAMPLE, "version": version})
    if not _IMAGE_RE.match(image):
        raise BackendError(f"version {version!r}: {where} gives {image!r}, not a valid image reference")
    return image


def _check_template(
    text: str,
    key: str,
    source: str,
    *,
    shown: object = None,
    table: str = "[target.docker]",
    holes: tuple[str, ...] = HOLES,
) -> None:
    """Every ``{hole}`` of ``text`` is one of ``holes``; ConfigError naming the key, its value and ``source``."""
    value = text if shown is None else shown
    try:
        found = [name for _, name, spec, conv in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{table} {key} = {value!r} ({source}): {exc}") from None
    unknown = [name for name in found if name not in holes]
    if unknown:
        raise ConfigError(
            f"{table} {key} = {value!r} ({source}): unknown hole {{{unknown[0]}}}; "
            f"known: {', '.join('{' + hole + '}' for hole in holes)}"
        )

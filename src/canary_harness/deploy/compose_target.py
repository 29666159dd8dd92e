"""How the compose backend runs one version of a target: its compose files and, per role, the service.

fragrance-ai needs no table: the runbook's files in ``compose/`` (``compose.runbook_target``). Any other service names
its own files in the profile's ``[target.compose]`` table, and for each role the compose service and the two
variables its files read for that role's version and port::

    [target.compose]
    files = ["examples/hello-compose.yml"]      # relative to the working directory, as [target] command
    image = "hello-service:{version}"           # optional: refused before ``up`` when the engine lacks it
    production = { service = "hello" }          # version and port from PRODUCTION_VERSION, PRODUCTION_PORT
    canary = { service = "hello-canary", version_variable = "CANARY_VERSION", port_variable = "CANARY_PORT" }

The harness gives each variable its value in docker-compose's environment, so the files decide how the
service uses them (image tag, argv, environment). The target travels in the harness's own override file
(``x-canary-harness``), so that a later process (``canary stack down``) stops the service the way it started.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.configuration.parsers import table_of
from canary_harness.deploy.container_target import ENV_NAME_RE, check_image_template, image_of_version
from canary_harness.errors import ConfigError

TABLE = "[target.compose]"
KEYS = ("files", "image", "production", "canary")
ROLE_KEYS = ("service", "version_variable", "port_variable")
DEFAULT_VARIABLES = {
    "production": ("PRODUCTION_VERSION", "PRODUCTION_PORT"),
    "canary": ("CANARY_VERSION", "CANARY_PORT"),
}
# A compose service name (what docker-compose 1.29 accepts).
_SERVICE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")


@dataclass(frozen=True)
class ComposeRole:
    """One role's compose service and the variables its files read for the version and the port."""

    service: str
    version_variable: str
    port_variable: str
    # The variable naming the role's whole image (the runbook's CANARY_IMAGE), if its files read one.
    image_variable: str | None = None


@dataclass(frozen=True)
class ComposeTarget:
    """The compose files, each role's service, and the image template checked before ``up``."""

    files: tuple[Path, ...]
    roles: Mapping[str, ComposeRole]
    image: str | None = None
    # The runbook's own services take ``--port P --log-file F`` after their entrypoint and write their JSON
    # log into the run directory (the log-field checks read it); any other service keeps its own argv.
    service_log: bool = False
    source: str = TABLE

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> ComposeTarget:
        """The table's settings; ConfigError naming ``source`` (file and table), the key and its value."""
        data = table_of(data, "target.compose", KEYS, source)
        files = data.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
            raise ConfigError(
                f"{TABLE} files = {files!r} ({source}): required, a list of compose files "
                "(e.g. ['deploy/docker-compose.yml'])"
            )
        image = data.get("image")
        if image is not None:
            if not isinstance(image, str) or not image:
                raise ConfigError(f"{TABLE} image = {image!r} ({source}): must be an image, e.g. 'x:{{version}}'")
            check_image_template(image, TABLE, source, holes=("version",))
        roles = {role: _role(data.get(role), role, source) for role in DEFAULT_VARIABLES}
        production, canary = roles["production"], roles["canary"]
        if production.service == canary.service:
            raise ConfigError(
                f"{TABLE} production and canary service = {canary.service!r} ({source}): each role needs its own "
                "compose service (both run at once)"
            )
        variables = [name for role in roles.values() for name in (role.version_variable, role.port_variable)]
        twice = sorted({name for name in variables if variables.count(name) > 1})
        if twice:
            raise ConfigError(
                f"{TABLE} variable {twice[0]!r} ({source}): given twice; each role's version and port need "
                "variables of their own"
            )
        return cls(files=tuple(Path(f) for f in files), roles=roles, image=image, source=source)

    def check_files(self) -> None:
        """ConfigError naming the file, the key and the source unless every compose file exists."""
        for file in self.files:
            if not file.is_file():
                raise ConfigError(
                    f"{TABLE} files: {str(file)!r} ({self.source}) is not a file "
                    f"(relative paths are read from the working directory {Path.cwd()})"
                )

    def image_for(self, version: str) -> str | None:
        """The image ``version`` runs, when the table names one."""
        if self.image is None:
            return None
        return image_of_version(self.image, version, f"{TABLE} image = {self.image!r} ({self.source})")

    def variables(self, role: str, version: str, port: int) -> dict[str, str]:
        """The values docker-compose interpolates for ``role`` running ``version`` on ``port``."""
        names = self.roles[role]
        values = {names.version_variable: version, names.port_variable: str(port)}
        image = self.image_for(version)
        if names.image_variable and image:
            values[names.image_variable] = image
        return values

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (absolute file paths: a later process may run elsewhere)."""
        return {
            "files": [str(file.resolve()) for file in self.files],
            "roles": {role: vars(names) for role, names in self.roles.items()},
            "image": self.image,
            "service_log": self.service_log,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComposeTarget:
        """Inverse of ``to_json``."""
        return cls(
            files=tuple(Path(file) for file in data["files"]),
            roles={role: ComposeRole(**names) for role, names in data["roles"].items()},
            image=data.get("image"),
            service_log=bool(data.get("service_log")),
            source="the harness's compose override",
        )


def _role(data: object, role: str, source: str) -> ComposeRole:
    where = f"{TABLE} {role}"
    if data is None:
        raise ConfigError(f'{where} ({source}): required, e.g. {role} = {{ service = "my-service-{role}" }}')
    table = table_of(data, f"target.compose.{role}", ROLE_KEYS, source)
    service = table.get("service")
    if not isinstance(service, str) or not _SERVICE_RE.match(service):
        raise ConfigError(f"{where} service = {service!r} ({source}): must be the name of a compose service")
    version_default, port_default = DEFAULT_VARIABLES[role]
    names = []
    for key, default in (("version_variable", version_default), ("port_variable", port_default)):
        name = table.get(key, default)
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise ConfigError(f"{where} {key} = {name!r} ({source}): must be a variable name (letters, digits, '_')")
        names.append(name)
    return ComposeRole(service=service, version_variable=names[0], port_variable=names[1])

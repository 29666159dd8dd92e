"""The sections of canary.toml and, for each, the code that reads it: one table, so that ``canary precheck``
validates a section exactly as a stage or a command will read it and knows every section they read.

A section is validated by running its reader on it. Keys the reader never looks at are reported as
unknown (ignored): the reader is given a mapping that records which keys it looked up, so the list of
known keys is the reader's own, not a copy that could drift. A reader that walks the whole table
(``for key in data``) checks its keys itself and refuses unknown ones with a ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from canary_harness.config import resolve_stack_settings, resolve_traffic_settings
from canary_harness.configuration.resolve import validate_table_sections


class _Recording(Mapping[str, Any]):
    """A read-only view of a table that remembers which keys were looked up and whether it was walked."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self.looked_up: set[str] = set()
        self.walked = False

    def __getitem__(self, key: str) -> Any:
        self.looked_up.add(key)
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.looked_up.add(key)
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        """Like dict.get, recording the key."""
        self.looked_up.add(key)
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        self.walked = True
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _file(source: str) -> str:
    return source.partition(" [")[0]  # "canary.toml [stack]" -> "canary.toml"


def _stack(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    return resolve_stack_settings(toml={"stack": section}, environ={}, toml_file=_file(source))


def _traffic(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    # The environment may complete an external NGINX (CANARY_NGINX_DIR / _URL), as it does for a stage.
    validate_table_sections({"traffic": section}, _file(source))
    return resolve_traffic_settings(toml={"traffic": section}, environ=environ)


def _stage(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    validate_table_sections({"stage": section}, _file(source))
    return None


def _judge(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.judge.settings import JudgeSettings

    return JudgeSettings.from_mapping(section, source)


def _load(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.loadgen.settings import LoadSettings

    return LoadSettings.from_mapping(section, source)


def _prometheus(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.metrics.prometheus_settings import PrometheusSettings

    return PrometheusSettings.from_mapping(section, source)


def _shadow(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.traffic.shadow_policy import ShadowPolicy

    return ShadowPolicy.from_mapping(section, source)


def _notify(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.notify import NotifySettings

    return NotifySettings.from_mapping(section, source)


def _metrics(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.metrics.source_settings import MetricsSettings

    return MetricsSettings.from_mapping(section, source)


def _workers(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.deploy.workers import resolve_worker_plan

    return resolve_worker_plan({"workers": section}, environ)


def _target(section: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> object:
    from canary_harness.target import TargetSettings

    return TargetSettings.from_mapping(section, source)


Reader = Callable[[Mapping[str, Any], str, Mapping[str, str]], object]

# Every section of canary.toml the harness reads, with the function that reads it (ConfigError when bad).
# tests/unit/test_config_sections.py checks that every section the source code reads is listed here.
SECTION_READERS: Mapping[str, Reader] = {
    "stack": _stack,
    "traffic": _traffic,
    "stage": _stage,
    "judge": _judge,
    "load": _load,
    "prometheus": _prometheus,
    "notify": _notify,
    "metrics": _metrics,
    "workers": _workers,
    "target": _target,
    "shadow": _shadow,
}


def _smoke(steps: object, source: str) -> object:
    from canary_harness.smoke import parse_journey

    return parse_journey(steps, source)


# Sections written as arrays of tables ([[name]]), read whole by their reader.
ARRAY_READERS: Mapping[str, Callable[[object, str], object]] = {"smoke": _smoke}


def validate_section(
    name: str, section: Mapping[str, Any], environ: Mapping[str, str] | None = None, toml_file: str = "canary.toml"
) -> list[str]:
    """Read ``[name]`` of ``toml_file`` as the harness does: ConfigError when a value or a key is bad.

    Every reader refuses the keys it does not know; should one not, they are returned as warnings.

    KeyError when ``name`` is not a section the harness reads (see :data:`SECTION_READERS`).
    """
    reader = SECTION_READERS[name]
    recording = _Recording(section)
    reader(recording, f"{toml_file} [{name}]", {} if environ is None else environ)
    if recording.walked:
        return []  # the reader saw every key and refuses unknown ones itself
    return [f"unknown key {key!r} (ignored)" for key in sorted(set(section) - recording.looked_up)]

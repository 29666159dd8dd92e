"""One exception tree for the harness.

CanaryError                 root: everything the harness raises on purpose
├── ConfigError             bad input (flag, env var, canary.toml): names the value and its source
├── TrafficError            the traffic controller could not render, check, apply or read a weight
├── BackendError            a service version could not be started, found healthy or stopped
│   └── ImageError          a service image could not be built or checked (pip, docker build, health)
│       └── EngineUnavailableError  Docker not installed or its engine not answering
├── MetricsError            a metrics source could not be read or gave unusable data
│   ├── CounterResetError   a counter went backwards: the instance restarted during the stage
│   └── NoDataError         the source answered but holds no sample for the query ("no data")
├── LoadError               the load generator failed to run or to report its stats
├── StackError              the local stack's recorded state is missing or inconsistent
├── RolloutError            a rollout cannot start or go on (lock held, journal refuses promotion, ...)
├── RollbackError           a rollback did not leave the canary at weight 0: never swallowed
└── ReportError             the HTML report could not be built (no Allure CLI, no results)

Errors from subprocesses, HTTP clients and the like are translated at the boundary with
``raise ... from exc`` and carry diagnostics (URL, status, last log lines).
"""

from __future__ import annotations

from canary_harness.redact import redact


class CanaryError(Exception):
    """Root of every error the harness raises on purpose."""

    def __str__(self) -> str:
        """The message with every registered environment value masked (see canary_harness.redact)."""
        return redact(super().__str__())


class ConfigError(CanaryError):
    """A configuration value is invalid; the message names the value and where it came from."""


class TrafficError(CanaryError):
    """Setting or reading the traffic split failed; the configuration in force is unchanged."""


class BackendError(CanaryError):
    """A service version could not be started, reached or stopped."""


class ImageError(BackendError):
    """A service image could not be built, checked or listed; nothing half-built is left tagged."""


class EngineUnavailableError(ImageError):
    """Docker is not installed or its engine does not answer; the message names scripts/docker-up.sh."""


class MetricsError(CanaryError):
    """A metrics source could not be read or returned data that cannot be used."""


class CounterResetError(MetricsError):
    """A cumulative counter went down between two reads: the instance restarted (a restarted canary fails)."""


class NoDataError(MetricsError):
    """The metrics source answered, but has no sample for what was asked."""


class LoadError(CanaryError):
    """The load generator failed to run or to report its statistics."""


class StackError(CanaryError):
    """The local stack's recorded state is missing or does not match what runs."""


class RolloutError(CanaryError):
    """A rollout, promotion or rollback request cannot be carried out as asked."""


class RollbackError(CanaryError):
    """A rollback did not reach a verified weight of 0. Never swallowed."""


class ReportError(CanaryError):
    """The HTML report could not be built (no Allure CLI, no results, the CLI failed)."""


def raise_collected(errors: list[CanaryError]) -> None:
    """After a teardown that went on past its failures: nothing when there were none, the error itself when
    there was one kind (the same message twice is one), else one StackError naming each."""
    first_of: dict[str, CanaryError] = {}
    for error in errors:
        first_of.setdefault(str(error), error)
    distinct = list(first_of.values())
    if len(distinct) == 1:
        raise distinct[0]
    if distinct:
        raise StackError("; ".join(str(error) for error in distinct)) from distinct[0]

"""Shared integration fixtures: real fragrance-ai processes and real NGINX stacks on free loopback ports.

Load them in a test module (helpers such as ``free_ports`` import normally)::

    pytest_plugins = ("tests.integration.stackfixtures",)

Everything a fixture starts is stopped by PID in its finalizer, also when the test fails. Services run
with ``FRAGRANCE_LATENCY_SCALE=0`` (no simulated latency) unless a test overrides it.

The module holds no assertions, so pytest need not rewrite it: PYTEST_DONT_REWRITE (this lets test
modules import its helpers before ``pytest_plugins`` loads it, without a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from canary_harness.config import StackSettings
from canary_harness.deploy.process import ProcessBackend
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.ports import free_port, free_ports
from canary_harness.stack import LocalStack

FAST_ENV: Mapping[str, str] = {"FRAGRANCE_LATENCY_SCALE": "0"}
PRODUCTION_VERSION = "v0.1.0"
CANARY_VERSION = "v0.2.0"

ServiceFactory = Callable[..., ServiceHandle]
StackFactory = Callable[..., LocalStack]


def stack_settings(run_dir: Path, **overrides: object) -> StackSettings:
    """StackSettings on three free ports in ``run_dir``, with fast services; keywords override fields."""
    nginx_port, production_port, canary_port = free_ports(3)
    values: dict[str, object] = {
        "nginx_port": nginx_port,
        "production_port": production_port,
        "canary_port": canary_port,
        "run_dir": run_dir,
        "production_version": PRODUCTION_VERSION,
        "canary_version": CANARY_VERSION,
        "production_env": dict(FAST_ENV),
        "canary_env": dict(FAST_ENV),
    }
    values.update(overrides)
    return StackSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start real fragrance-ai instances: ``start(version="v0.1.0", role="production", env=None)``.

    Each runs on a free port with its log in tmp_path; all are stopped by PID at teardown.
    """
    backend = ProcessBackend()
    started: list[ServiceHandle] = []

    def start(
        version: str = PRODUCTION_VERSION, role: str = "production", env: Mapping[str, str] | None = None
    ) -> ServiceHandle:
        port = free_port()
        spec = ServiceSpec(
            role=role,
            version=version,
            port=port,
            env={**FAST_ENV, **(env or {})},
            log_path=tmp_path / f"{role}-{version}-{port}.log",
        )
        handle = backend.start(spec, timeout=30.0)
        started.append(handle)
        return handle

    yield start
    for handle in reversed(started):
        backend.stop(handle, timeout=5.0)


@pytest.fixture
def fragrance_service(service_factory: ServiceFactory) -> ServiceHandle:
    """One real fragrance-ai (production, v0.1.0) on a free port."""
    return service_factory()


def _stack_factory(base: Path) -> Iterator[StackFactory]:
    stacks: list[LocalStack] = []

    def make(*, with_canary: bool = True, canary_weight: int = 0, **overrides: object) -> LocalStack:
        run_dir = base / f"stack{len(stacks)}"
        stack = LocalStack(stack_settings(run_dir, **overrides))
        stacks.append(stack)
        stack.up(with_canary=with_canary, canary_weight=canary_weight)
        return stack

    yield make
    errors: list[BaseException] = []
    for stack in reversed(stacks):
        try:
            stack.down()
        except Exception as exc:  # keep stopping the others; report at the end
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[StackFactory]:
    """Bring up LocalStacks (NGINX + production v0.1.0 + canary v0.2.0) on free ports.

    ``make(with_canary=True, canary_weight=0, **StackSettings overrides)``; each stack is brought down
    (everything stopped by PID) at teardown.
    """
    yield from _stack_factory(tmp_path)


@pytest.fixture
def canary_stack(stack_factory: StackFactory) -> LocalStack:
    """A fresh stack for one test: production v0.1.0, canary v0.2.0, canary weight 0."""
    return stack_factory()


@pytest.fixture(scope="module")
def module_canary_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack shared by a module's tests (production v0.1.0, canary v0.2.0).

    Tests may change the weight; ``canary_stack_at_zero`` puts it back to 0 before each test.
    """
    factory = _stack_factory(tmp_path_factory.mktemp("module-stack"))
    make = next(factory)
    yield make()
    next(factory, None)


@pytest.fixture
def canary_stack_at_zero(module_canary_stack: LocalStack) -> LocalStack:
    """The module's shared stack with its canary weight set (and verified) to 0."""
    traffic = module_canary_stack.traffic()
    if traffic.canary_weight() != 0:
        traffic.set_canary_weight(0, reason="test isolation")
    return module_canary_stack

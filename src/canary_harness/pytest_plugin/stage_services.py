"""The stage's services: find or start them (the recorded stack and the canary at the stage's version, or
services given by URL with the router that moves their traffic), and the check that keeps a dry run from
replacing a canary that serves traffic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from canary_harness import journal
from canary_harness.config import resolve_traffic_settings
from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.deploy.workers import CanaryWorkers, resolve_worker_plan
from canary_harness.errors import ConfigError, StackError
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.reporting.longwait import LongWait
from canary_harness.stack import LocalStack
from canary_harness.stack_state import StackState, load_state
from canary_harness.traffic.external import ExternalNginxController
from canary_harness.traffic.protocol import TrafficController
from canary_harness.traffic.render import header_variable


def external_traffic(options: StageOptions) -> ExternalNginxController | None:
    """The user's NGINX (``[traffic] nginx = "external"``) routing to services given by URL, if that is the
    stage's setting (and it moves traffic: not a dry run); None otherwise."""
    if options.dry_run or not (options.canary_url and options.production_url):
        return None
    settings = resolve_traffic_settings(toml=options.toml, stack=options.stack)
    if settings.nginx != "external":
        return None
    return ExternalNginxController.for_services(
        settings, production_url=options.production_url, canary_url=options.canary_url
    )


def stack_router(options: StageOptions) -> str:
    """The router a stage starts its stack with: "memory" under ``[traffic] nginx = "memory"`` (the in-process
    test double), else the managed NGINX."""
    return "memory" if resolve_traffic_settings(toml=options.toml, stack=options.stack).nginx == "memory" else "managed"


def journal_event(run_dir: Path, event: str, **fields: Any) -> None:
    """A journal entry; a journal that cannot be written ends the stage as a harness error (and so rolls
    back), never as a crash of the session."""
    try:
        journal.append(run_dir, event, **fields)
    except OSError as exc:
        raise StackError(f"cannot write the journal {journal.journal_path(run_dir)}: {exc}") from exc


def healthy_but_canary(stack: LocalStack) -> bool:
    """NGINX and production run and answer; the canary's health does not matter (it is replaced if down)."""
    components = {item.name: item for item in stack.status().components}
    return all(
        name in components and components[name].running and components[name].healthy for name in ("nginx", "production")
    )


def check_dry_run_may_start(running: ServiceHandle | None, weight: int, version: str) -> None:
    """A dry run moves nothing: it never changes the weight, and it starts (or replaces) a canary only while
    the canary gets no traffic (weight 0). A canary serving a share is never replaced: ConfigError."""
    if weight == 0:
        return
    what = f"canary {running.version} (PID {running.pid})" if running is not None else "no healthy canary"
    raise ConfigError(
        f"dry run of {version}: the stack runs {what} at weight {weight} % with another version, environment "
        "or health; a dry run never replaces a canary that serves traffic. Roll it back first (canary "
        "rollback) or run without --canary-dry-run"
    )


def start_services(options: StageOptions, record: StageRecord, say: Callable[[str], None]) -> TrafficController | None:
    """Find or start the stage's services and record their URLs; the controller that moves the stage's traffic
    (None in a dry run, which moves nothing).

    Services given by URL are used as they are, routed by the user's NGINX or the recorded stack's; otherwise
    the recorded stack is reused if healthy (restarted if not) and the canary (re)started at the stage's
    version and environment, at weight 0 until its preflight."""
    if options.canary_url or options.production_url:
        if not (options.canary_url and options.production_url):
            raise ConfigError("--canary-url and --canary-production-url go together (services running elsewhere)")
        record.canary_url, record.production_url = options.canary_url, options.production_url
        external = external_traffic(options)
        if external is not None:
            record.nginx_url = external.base_url
            return external
        state = load_state(options.stack.run_dir)
        if state is not None and state.nginx is not None and not options.dry_run:
            traffic = LocalStack(options.stack).traffic()
            record.nginx_url = state.nginx.base_url
            return traffic
        if not options.dry_run:
            raise ConfigError(
                f"--canary-url given but no stack recorded in {options.stack.run_dir} to move traffic "
                "with: start one (canary stack up) or add --canary-dry-run"
            )
        return None
    stack = LocalStack(options.stack)
    state = load_state(options.stack.run_dir)
    other_header = state is not None and not logs_group_header(options, state)
    restart = state is None or other_header or not healthy_but_canary(stack)
    # A missing image (docker backend) is named before anything starts or any traffic moves.
    stack.preflight(production=restart, canary_version=options.canary_version)
    if state is None or restart:
        why = f"logs another group header than {options.stack.group_header}" if other_header else "is not healthy"
        if state is not None and options.dry_run:
            raise ConfigError(
                f"dry run: the stack recorded in {options.stack.run_dir} {why}; a dry "
                "run never restarts it (canary stack status shows what is wrong)"
            )
        if state is not None:
            say(f"canary: the stack recorded in {options.stack.run_dir} {why}: restarting it")
            stack.down()
        with LongWait(f"canary: starting the local stack (production {options.production_version})", say=say):
            state = stack.up(with_canary=False, router=stack_router(options))
    canary = state.canary
    # A release with workers: the canary's API hands its work to them through the stack's broker.
    workers = CanaryWorkers(options.stack.run_dir, options.stack.host, backend=options.stack.backend)
    plan = resolve_worker_plan(options.toml)
    canary_env = {**options.canary_env, **workers.api_env(plan)}
    replaced = (
        canary is None
        or canary.version != options.canary_version
        or canary.env_digest != stack.env_digest(canary_env)
        or not stack.is_healthy(canary)
    )
    if replaced:
        traffic = stack.traffic()
        if options.dry_run:
            check_dry_run_may_start(canary, traffic.canary_weight(), options.canary_version)
        if traffic.canary_weight() != 0:
            # Never let a replaced canary take the previous stage's share before its preflight.
            traffic.set_canary_weight(0, reason="canary replaced")
            journal_event(
                options.stack.run_dir,
                "weight",
                version=options.canary_version,
                stage=options.stage,
                reason="canary replaced: weight 0 before it starts",
                weight=0,
            )
        with LongWait(f"canary: starting canary {options.canary_version}", say=say):
            canary = stack.start_canary(options.canary_version, canary_env)
        state = stack.state()
    digest = stack.env_digest(canary_env)
    if plan and (replaced or not workers.healthy(options.canary_version, plan, digest)):
        with LongWait(f"canary: starting the canary's workers ({plan.llm} llm, {plan.rl} rl)", say=say):
            workers.start(options.canary_version, canary_env, plan, digest)
    elif not plan:
        workers.stop()  # a release without workers keeps none of an earlier one's
    record.canary_workers = workers.describe()
    assert state.nginx is not None and state.production is not None and canary is not None
    use_services(record, state.nginx.base_url, state.production, canary)
    return None if options.dry_run else stack.traffic()


def logs_group_header(options: StageOptions, state: StackState) -> bool:
    """Whether the recorded stack's NGINX logs the stage's group header ([traffic] group_header): one started
    with another header would leave every latency group of the nginx-log metrics empty."""
    if state.nginx is None or state.nginx.router != "managed":
        return True
    try:
        text = (state.nginx.dir / "nginx.conf").read_text()
    except OSError:
        return True  # no file to judge by: the health check decides
    return f"$http_{header_variable(options.stack.group_header)}" in text


def use_services(record: StageRecord, nginx_url: str, production: ServiceHandle, canary: ServiceHandle) -> None:
    """Record the URLs the stage uses and where the canary logs."""
    record.nginx_url, record.production_url, record.canary_url = nginx_url, production.url, canary.url
    record.canary_log = str(canary.app_log_path or canary.log_path)

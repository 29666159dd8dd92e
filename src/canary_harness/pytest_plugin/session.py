"""The stage session: start or find the services, preflight, set the weight, observe, judge.

Runs once per pytest session on the controller (never on an xdist worker) and produces a StageRecord.
Harness errors end the stage with ``record.error`` set (the tests then fail and the session rolls
back); KeyboardInterrupt propagates after the record is saved, and the rollback still runs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from contextlib import ExitStack, closing, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from canary_harness import journal
from canary_harness.config import resolve_traffic_settings
from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.errors import CanaryError, ConfigError, CounterResetError, StackError, TrafficError
from canary_harness.judge import make_judge
from canary_harness.judge.planner import format_plan, plan_stage, rate_to_decide
from canary_harness.judge.policy import restarted_canary
from canary_harness.judge.protocol import Judge
from canary_harness.judge.rates import Replanner, describe, plan_from
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import StageVerdict, State
from canary_harness.load import LoadRun, LoadSettings, LoadStats, parse_mix
from canary_harness.load.sizing import (
    AutoLoad,
    load_bound,
    machine_max_rps,
    missing_rate,
    name_bound,
    real_rate,
    spawn_rate_for,
    users_for_rate,
)
from canary_harness.metrics.prometheus import PrometheusSettings, PrometheusSource
from canary_harness.metrics.prometheus_server import LocalPrometheus
from canary_harness.metrics.protocol import MetricsSource
from canary_harness.metrics.scrape import ScrapeSource
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.rates_store import load_rates, save_rates
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.report import ProgressPrinter, format_table
from canary_harness.reporting.live import Printer, ProgressFactory
from canary_harness.reporting.longwait import LongWait
from canary_harness.reporting.trace import DecisionTrace
from canary_harness.smoke import require_smoke
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.traffic.external import ExternalNginxController
from canary_harness.traffic.probe import probe_split
from canary_harness.traffic.protocol import TrafficController

SPLIT_PROBE_REQUESTS = 400
# Load keeps running a little past the window so the last ticks still see traffic.
LOAD_MARGIN_S = 5.0
# Rough request rate of one simulated user, used only to print the plan before load is measured.
RPS_PER_USER = 1.0
# Services given by URL may have real users: their traffic is measured over this long before load starts.
REAL_TRAFFIC_S = 5.0
# Prometheus 2.42 picks up new targets on a fixed 5 s cycle: allow a few of them.
PROMETHEUS_READY_S = 20.0


def binomial_interval(n: int, p: float, z: float = 3.29) -> tuple[int, int]:
    """Normal-approximation interval (z=3.29: 99.9 %) for a binomial count, widened by 1 at each end."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return max(0, math.floor(mean - z * sd) - 1), min(n, math.ceil(mean + z * sd) + 1)


def _stop_all(runs: list[LoadRun]) -> list[LoadStats]:
    """Stop every load run even if one fails to stop; the first error is raised after all stopped."""
    stats, errors = [], []
    for run in runs:
        try:
            stats.append(run.stop())
        except CanaryError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return stats


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


def _journal(run_dir: Path, event: str, **fields: Any) -> None:
    """A journal entry; a journal that cannot be written ends the stage as a harness error (and so rolls
    back), never as a crash of the session."""
    try:
        journal.append(run_dir, event, **fields)
    except OSError as exc:
        raise StackError(f"cannot write the journal {journal.journal_path(run_dir)}: {exc}") from exc


def _healthy_but_canary(stack: LocalStack) -> bool:
    """NGINX and production run and answer; the canary's health does not matter (it is replaced if down)."""
    components = {item.name: item for item in stack.status().components}
    return all(
        name in components and components[name].running and components[name].healthy for name in ("nginx", "production")
    )


def _check_dry_run_may_start(running: ServiceHandle | None, weight: int, version: str) -> None:
    """A dry run moves nothing: it never changes the weight, and it starts (or replaces) a canary only while
    the canary gets no traffic (weight 0). A canary serving a share is never replaced: ConfigError."""
    if weight == 0:
        return
    what = f"canary {running.version} (PID {running.pid})" if running is not None else "no healthy canary"
    raise ConfigError(
        f"dry run of {version}: the stack runs {what} at weight {weight} % with another version, environment "
        "or health; a dry run never replaces a canary that serves traffic. Roll it back first (canary "
        "rollback) or run without --dry-run"
    )


class StageSession:
    """One stage of a rollout as the pytest plugin runs it."""

    def __init__(self, options: StageOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.traffic: TrafficController | None = None
        # Called once, the moment the stage fails (verdict FAIL or a harness error), before the load
        # stops and before any release check: the plugin takes the canary's traffic away there.
        self.on_failed: Callable[[str], None] | None = None
        self._failed_reported = False
        self._limit_s = options.observation_period
        # The live view on a terminal (set by the plugin); plain progress lines when None.
        self.progress: ProgressFactory | None = None
        self._load_dir = options.stack.run_dir / "load"  # per stage once run() knows the record's name
        self.record = StageRecord(
            canary_version=options.canary_version,
            production_version=options.production_version,
            stage=options.stage,
            dry_run=options.dry_run,
            judge=options.judge,
        )

    # ------------------------------------------------------------------ phases
    def run(self, record_path: Path, on_applied: Callable[[StageRecord], None]) -> StageRecord:
        """Every phase in order; saves the record whatever happens."""
        record = self.record
        # Each stage keeps its load files beside its record (same name): a later stage does not overwrite them.
        self._load_dir = self.options.stack.run_dir / "load" / record_path.stem
        current = record.begin("start")
        try:
            self._start_services()
            record.end(current, True, f"canary {record.canary_url}, production {record.production_url}")
            current = record.begin("preflight")
            self._preflight()
            record.end(current, True, f"{len(record.preflight)} smoke steps passed against the canary")
            current = record.begin("weight")
            self._apply_weight()
            record.end(current, True, self._weight_detail())
            on_applied(record)
            current = record.begin("observation")
            verdict = self._observe()
            record.end(current, verdict.state.value != "FAIL", verdict.reason)
        except CanaryError as exc:
            record.error = f"{current.name}: {exc}"
            record.end(current, False, str(exc))
            self.say(f"canary: stage {record.stage}% stopped in {current.name}: {exc}")
            self.failed(record.error)
        except BaseException as exc:
            # Ctrl-C, SIGTERM/SIGHUP (StageInterrupted), pytest-timeout's Failed: recorded, then the
            # session's exit guard rolls back.
            if isinstance(exc, KeyboardInterrupt):
                name = getattr(exc, "signal_name", None)
                what = f"interrupted by {name}" if name else "interrupted"
            else:
                what = f"interrupted ({type(exc).__name__}: {exc})"
            record.error = f"{current.name}: {what}"
            record.end(current, False, what)
            raise
        finally:
            record.ended_at = time.time()
            record.save(record_path)
        return record

    def failed(self, reason: str) -> None:
        """Report the stage's failure to ``on_failed`` (once, whoever notices it first)."""
        if self.on_failed is not None and not self._failed_reported:
            self._failed_reported = True
            self.on_failed(reason)

    def _start_services(self) -> None:
        options, record = self.options, self.record
        if options.canary_url or options.production_url:
            if not (options.canary_url and options.production_url):
                raise ConfigError("--canary-url and --production-url go together (services running elsewhere)")
            record.canary_url, record.production_url = options.canary_url, options.production_url
            external = external_traffic(options)
            if external is not None:
                self.traffic = external
                record.nginx_url = external.base_url
                return
            state = load_state(options.stack.run_dir)
            if state is not None and state.nginx is not None and not options.dry_run:
                self.traffic = LocalStack(options.stack).traffic()
                record.nginx_url = state.nginx.base_url
            elif not options.dry_run:
                raise ConfigError(
                    f"--canary-url given but no stack recorded in {options.stack.run_dir} to move traffic "
                    "with: start one (canary stack up) or add --dry-run"
                )
            return
        stack = LocalStack(options.stack)
        state = load_state(options.stack.run_dir)
        if state is None or not _healthy_but_canary(stack):
            if state is not None and options.dry_run:
                raise ConfigError(
                    f"dry run: the stack recorded in {options.stack.run_dir} is not healthy; a dry "
                    "run never restarts it (canary stack status shows what is wrong)"
                )
            if state is not None:
                self.say(f"canary: the stack recorded in {options.stack.run_dir} is not healthy: restarting it")
                stack.down()
            with LongWait(f"canary: starting the local stack (production {options.production_version})", say=self.say):
                state = stack.up(with_canary=False, router=stack_router(options))
        canary = state.canary
        if (
            canary is None
            or canary.version != options.canary_version
            or canary.env_digest != stack.env_digest(options.canary_env)
            or not stack.is_healthy(canary)
        ):
            traffic = stack.traffic()
            if options.dry_run:
                _check_dry_run_may_start(canary, traffic.canary_weight(), options.canary_version)
            if traffic.canary_weight() != 0:
                # Never let a replaced canary take the previous stage's share before its preflight.
                traffic.set_canary_weight(0, reason="canary replaced")
                _journal(
                    options.stack.run_dir,
                    "weight",
                    version=options.canary_version,
                    stage=options.stage,
                    reason="canary replaced: weight 0 before it starts",
                    weight=0,
                )
            with LongWait(f"canary: starting canary {options.canary_version}", say=self.say):
                canary = stack.start_canary(options.canary_version, options.canary_env)
            state = stack.state()
        assert state.nginx is not None and state.production is not None
        self._use_services(state.nginx.base_url, state.production, canary)
        if not options.dry_run:
            self.traffic = stack.traffic()

    def _use_services(self, nginx_url: str, production: ServiceHandle, canary: ServiceHandle) -> None:
        record = self.record
        record.nginx_url, record.production_url, record.canary_url = nginx_url, production.url, canary.url
        record.canary_log = str(canary.app_log_path or canary.log_path)

    def _preflight(self) -> None:
        record = self.record
        assert record.canary_url is not None
        with httpx.Client(base_url=record.canary_url, timeout=30.0) as client:
            steps = require_smoke(
                client, expected_version=self.options.canary_version, target=f"canary {record.canary_url}"
            )
        record.preflight = [step.to_dict() for step in steps]

    def _apply_weight(self) -> None:
        options, record = self.options, self.record
        if options.dry_run or self.traffic is None:
            self.say("canary: dry run: no traffic moved; the canary is judged on load sent to it directly")
            return
        self.traffic.set_canary_weight(options.stage, reason=f"stage {options.stage}%")
        in_force = self.traffic.canary_weight()
        record.weight_in_force = in_force
        _journal(
            options.stack.run_dir,
            "weight",
            version=options.canary_version,
            stage=options.stage,
            reason="stage applied",
            weight=in_force,
        )
        if in_force != options.stage:
            raise TrafficError(f"weight in force is {in_force} % after setting {options.stage} %")
        record.upstream_config = self.traffic.config_text() or ""
        assert record.nginx_url is not None
        split = probe_split(record.nginx_url, SPLIT_PROBE_REQUESTS)
        record.split_probe = split.to_dict()
        low, high = (
            (SPLIT_PROBE_REQUESTS,) * 2 if in_force == 100 else binomial_interval(SPLIT_PROBE_REQUESTS, in_force / 100)
        )
        if not low <= split.canary <= high:
            raise TrafficError(
                f"split check: {split.canary} of {split.total} probe requests reached the canary at "
                f"{in_force} %; expected {low}..{high} (binomial 99.9 %)"
            )

    def _weight_detail(self) -> str:
        probe = self.record.split_probe
        if probe is None:
            return "dry run: weight unchanged"
        return f"weight {self.record.weight_in_force} % in force; probe {probe.get('canary')}/{probe.get('total')}"

    # ------------------------------------------------------------------ observation
    def _judge_settings(self) -> JudgeSettings:
        base = JudgeSettings.from_mapping(self.options.toml.get("judge", {}), "canary.toml [judge]")
        period = self.options.observation_period
        # A window shorter than the soak (demos, CI) soaks for the whole window.
        return dataclasses.replace(
            base,
            max_duration_s=period,
            tick_s=self.options.tick,
            min_soak_s=min(base.min_soak_s, period),
            warmup_s=min(base.warmup_s, period / 2),
        )

    def _load_settings(self) -> LoadSettings:
        options = self.options
        base = LoadSettings.from_mapping(options.toml.get("load", {}), "canary.toml [load]")
        return dataclasses.replace(
            base,
            users=base.users if options.load_users is None else options.load_users,
            # --load-rate 0 is the closed loop (the fixed load of old); a number, that constant rate.
            rate_rps=base.rate_rps if not isinstance(options.load_rate, float) else options.load_rate or None,
            mix=base.mix if options.load_mix is None else parse_mix(options.load_mix, "from --load-mix"),
            workers=base.workers if options.load_workers is None else options.load_workers,
        )

    def _load_is_auto(self) -> bool:
        """--load-rate auto, also by default: unless a rate was given (flag, env, ini or canary.toml [load])."""
        options = self.options
        if options.no_load:
            return False
        if options.load_rate is not None:
            return options.load_rate == "auto"
        return "rate_rps" not in options.toml.get("load", {})

    def _auto_rate(self, load: LoadSettings, rps: float, settings: JudgeSettings) -> tuple[LoadSettings, float]:
        """--load-rate auto: the rate at which the checks' n90 fits the window, users scaled to reach it.

        Sized on the load's own mix in requests the load sends (n90 does not depend on the rate, so a plan
        at any rate gives the need); measured rates count only LLM requests, another unit, so not here."""
        options = self.options
        machine = machine_max_rps()
        plan = plan_stage(options.stage, rps, settings, dict(load.mix))
        rate, why = rate_to_decide(plan, load_bound(options.load_max_rps, machine))
        self._auto = name_bound(rate, why, options.load_max_rps, machine)
        return self._sized(load, self._auto), rate

    def _sized(self, load: LoadSettings, auto: AutoLoad) -> LoadSettings:
        """The load settings that send ``auto.load_rps``; ``_auto_line`` says what and why (the plan shows it)."""
        if auto.load_rps <= 0:
            self._auto_line = f"load rate auto: no load ({auto.why})"
            return load
        users = users_for_rate(auto.load_rps, load.users)
        self._auto_line = f"load rate auto: {auto.load_rps:g} req/s with {users} users ({auto.why})"
        return dataclasses.replace(
            load, rate_rps=auto.load_rps, users=users, spawn_rate=spawn_rate_for(users, load.spawn_rate)
        )

    def _real_traffic(self, source: MetricsSource) -> float:
        """Requests/s real users send through both arms (services given by URL), before any load of ours."""
        before = [source.snapshot(role) for role in ("canary", "production")]
        started = time.monotonic()
        time.sleep(REAL_TRAFFIC_S)  # a measurement interval: the counters' rate over it is the result
        after = [source.snapshot(role) for role in ("canary", "production")]
        return real_rate(
            sum(item.requests for item in before), sum(item.requests for item in after), time.monotonic() - started
        )

    def _metrics_source(self, stack: ExitStack) -> MetricsSource:
        """Each instance's /metrics by default; a Prometheus (given, or started for the stage) if asked."""
        options, record = self.options, self.record
        assert record.canary_url and record.production_url
        urls = {"canary": record.canary_url, "production": record.production_url}
        settings = PrometheusSettings.from_mapping(options.toml.get("prometheus", {}), "canary.toml [prometheus]")
        url = options.prometheus_url or settings.url  # the flag (or its env/ini twin), else [prometheus] url
        if url is None and options.prometheus == "off":
            return stack.enter_context(closing(ScrapeSource(urls)))
        if url is None:
            targets = {role: urlsplit(address).netloc for role, address in urls.items()}
            server = stack.enter_context(
                LocalPrometheus(
                    targets,
                    run_dir=options.stack.run_dir / "prometheus",
                    job=settings.job,
                    scrape_interval_s=min(1.0, options.tick),
                )
            )
            with LongWait(
                f"canary: waiting for the local Prometheus (pid {server.pid}) to scrape both arms", say=self.say
            ):
                server.wait_for_targets_up(PROMETHEUS_READY_S)
            url = server.url
            self.say(f"canary: local Prometheus {url} (pid {server.pid}) scraping both arms")
        self.say(f"canary: reading metrics through PromQL from {url}")
        source = stack.enter_context(closing(PrometheusSource.from_settings(settings, url)))
        for role in urls:
            source.wait_for_scrape(role, time.time(), PROMETHEUS_READY_S)
        return source

    def _load_runs(self, settings: LoadSettings, stats_dir: Path) -> list[LoadRun]:
        options, record = self.options, self.record
        duration = self._limit_s + LOAD_MARGIN_S
        if not options.dry_run:
            assert record.nginx_url is not None
            return [LoadRun(record.nginx_url, duration, settings, stats_dir / "nginx")]
        # Dry run: mirror the split without touching NGINX, one load run per arm, sized so that the
        # canary's share of requests is the stage's (the split check holds the judge to it).
        share = options.stage / 100
        canary_users = max(1, round(settings.users * share))
        arms = [(record.canary_url, share, canary_users, "canary")]
        if share < 1:
            arms.append(
                (record.production_url, 1 - share, max(1, round(canary_users * (1 - share) / share)), "production")
            )
        runs = []
        for url, part, users, name in arms:
            assert url is not None
            rate = None if settings.rate_rps is None else settings.rate_rps * part
            runs.append(
                LoadRun(url, duration, dataclasses.replace(settings, users=users, rate_rps=rate), stats_dir / name)
            )
        return runs

    def _observe(self) -> StageVerdict:
        options, record = self.options, self.record
        settings = self._judge_settings()
        self._limit_s = settings.observation_limit_s  # the window, plus the extension under "extend"
        judge = make_judge(options.judge, settings)
        load_settings = self._load_settings()
        rps = load_settings.rate_rps or load_settings.users * RPS_PER_USER
        previous, problem = load_rates(options.stack.run_dir)
        if problem:
            self.say(problem)
        auto = self._load_is_auto()
        self._auto_line = ""
        if auto:
            load_settings, rps = self._auto_rate(load_settings, rps, settings)
        plan = (
            plan_stage(options.stage, rps, settings, dict(load_settings.mix))
            if previous is None
            else plan_from(options.stage, settings, previous)
        )
        self._replan = Replanner(options.stage, settings, plan, previous)
        record.plan = (
            format_plan(plan)
            if previous is None
            else (f"planned from the rates {previous.source} ({describe(previous)}):\n{format_plan(plan)}")
        )
        if self._auto_line:  # the plan states the rate the load was sized to, and why
            record.plan = f"{self._auto_line}\n{record.plan}"
        self.say(record.plan)
        weight = record.weight_in_force if record.weight_in_force is not None else options.stage
        self._trace = DecisionTrace.start(judge, settings, options.stage, weight)
        interval = max(5.0, options.tick)
        view = (
            self.progress(self.say, interval, self._limit_s, plan.pass_seconds[0])
            if self.progress
            else nullcontext(ProgressPrinter(self.say, interval=interval))
        )
        with ExitStack() as resources:
            source = self._metrics_source(resources)
            if auto and options.canary_url and options.production_url:  # not our services: users may be there
                self._auto = missing_rate(self._auto, self._real_traffic(source))
                load_settings = self._sized(load_settings, self._auto)
                self.say(self._auto_line)
                record.plan = f"{self._auto_line}\n{record.plan}"
            sends = not options.no_load and not (auto and self._auto.load_rps <= 0)
            runs = self._load_runs(load_settings, self._load_dir) if sends else []
            try:
                base_canary, base_production = source.snapshot("canary"), source.snapshot("production")
                for run in runs:
                    run.start()
                started = time.monotonic()
                with view as printer:
                    verdict = self._tick_loop(judge, source, base_canary, base_production, weight, started, printer)
                if verdict.state == State.FAIL:
                    self.failed(f"verdict FAIL: {verdict.reason}")
            finally:
                stats = _stop_all(runs)
                record.trace = self._trace.to_dict()
        if stats:
            record.load = {"runs": [item.to_dict() for item in stats]}
            for item in stats:
                self.say(item.format_table())
        if self._replan.rates is not None and self._replan.rates is not previous:
            record.rates = self._replan.rates.to_dict()
            save_rates(options.stack.run_dir, self._replan.rates)
        record.verdict = verdict.to_dict()
        self.say(format_table(verdict))
        return verdict

    def _tick_loop(
        self,
        judge: Judge,
        source: MetricsSource,
        base_canary: MetricsSnapshot,
        base_production: MetricsSnapshot,
        weight: int,
        started: float,
        printer: Printer,
    ) -> StageVerdict:
        options = self.options
        deadline = started + self._limit_s
        next_tick = started
        while True:
            next_tick += options.tick
            pause = min(next_tick, deadline) - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the loop's cadence: one metrics read per tick
            elapsed = time.monotonic() - started
            try:
                canary = source.snapshot("canary").minus(base_canary)
            except CounterResetError as exc:
                verdict = restarted_canary(judge.name, elapsed, str(exc))
                printer.update(verdict, options.stage)
                return verdict
            production = source.snapshot("production").minus(base_production)
            if time.monotonic() >= deadline:
                verdict = judge.conclude(elapsed, canary, production, weight)
                self._trace.add(verdict, canary, production, judge)
                printer.update(verdict, options.stage)
                return verdict
            extended = judge.extension
            verdict = judge.observe(elapsed, canary, production, weight)
            if judge.extension and not extended:  # say once, on the console and in the record, why
                self.record.extension = judge.extension
                printer.line(f"[stage {options.stage}%] EXTENDED: {judge.extension}")
            self._trace.add(verdict, canary, production, judge)
            printer.update(verdict, options.stage)
            if verdict.decided:
                return verdict
            plan = self._replan.update(elapsed, canary, production)
            if plan is not None:
                self.record.plan = plan
                printer.line(plan)

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
from contextlib import ExitStack, nullcontext
from pathlib import Path

import httpx

from canary_harness.errors import CanaryError, CounterResetError, TrafficError
from canary_harness.judge import make_judge
from canary_harness.judge.plan_text import format_plan
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.policy import restarted_canary
from canary_harness.judge.protocol import Judge
from canary_harness.judge.rates import Replanner, describe, plan_from
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import StageVerdict, State
from canary_harness.loadgen.sizing import missing_rate
from canary_harness.metrics.protocol import MetricsSource
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.rates_store import load_rates, save_rates
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.stage_load import (
    RPS_PER_USER,
    auto_rate,
    judged_mix,
    load_is_auto,
    load_runs,
    load_settings,
    plan_point,
    real_traffic,
    shadow_fraction,
    sized,
    stop_all,
)
from canary_harness.pytest_plugin.stage_metrics import metrics_source
from canary_harness.pytest_plugin.stage_services import journal_event, start_services
from canary_harness.report import ProgressPrinter, format_table
from canary_harness.reporting.live import Printer, ProgressFactory
from canary_harness.reporting.trace import DecisionTrace
from canary_harness.smoke import journey_from, require_smoke
from canary_harness.stages import SHADOW_STAGE, stage_label
from canary_harness.traffic.probe import probe_split
from canary_harness.traffic.protocol import TrafficController
from canary_harness.traffic.shadow_policy import ShadowPolicy

# The two arms the observation compares, read together at each tick.
ARMS = ("canary", "production")


def binomial_interval(n: int, p: float, z: float = 3.29) -> tuple[int, int]:
    """Normal-approximation interval (z=3.29: 99.9 %) for a binomial count, widened by 1 at each end."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return max(0, math.floor(mean - z * sd) - 1), min(n, math.ceil(mean + z * sd) + 1)


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
            self.traffic = start_services(self.options, self.record, self.say)
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
            self.say(f"canary: stage {stage_label(record.stage)} stopped in {current.name}: {exc}")
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

    def _preflight(self) -> None:
        record = self.record
        assert record.canary_url is not None
        with httpx.Client(base_url=record.canary_url, timeout=30.0) as client:
            steps = require_smoke(
                client,
                expected_version=self.options.canary_version,
                target=f"canary {record.canary_url}",
                journey=journey_from(self.options.toml),
            )
        record.preflight = [step.to_dict() for step in steps]

    def _apply_weight(self) -> None:
        options, record = self.options, self.record
        if options.dry_run or self.traffic is None:
            self.say("canary: dry run: no traffic moved; the canary is judged on load sent to it directly")
            return
        if options.stage == SHADOW_STAGE:
            self._apply_shadow()
            return
        self.traffic.set_canary_weight(options.stage, reason=f"stage {options.stage}%")
        in_force = self.traffic.canary_weight()
        record.weight_in_force = in_force
        journal_event(
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
        probes = options.split_probe
        split = probe_split(record.nginx_url, probes)
        record.split_probe = split.to_dict()
        low, high = (probes, probes) if in_force == 100 else binomial_interval(probes, in_force / 100)
        if not low <= split.canary <= high:
            raise TrafficError(
                f"split check: {split.canary} of {split.total} probe requests reached the canary at "
                f"{in_force} %; expected {low}..{high} (binomial 99.9 %)"
            )

    def _apply_shadow(self) -> None:
        """Stage 0: users on production only, ``--canary-shadow-share`` % of their requests copied to the canary;
        both read back from NGINX and the users' side proven by probe requests (none answered by the canary)."""
        options, record = self.options, self.record
        assert self.traffic is not None and record.nginx_url is not None
        share = options.shadow_share
        policy = ShadowPolicy.from_mapping(options.toml.get("shadow", {}), "canary.toml [shadow]")
        self.traffic.set_shadow(share, drop=policy.drop, reason=f"stage shadow ({share}% copied)")
        in_force = self.traffic.weights_in_force()
        record.weight_in_force, record.shadow_share = in_force.canary_weight, in_force.shadow_share
        journal_event(
            options.stack.run_dir,
            "weight",
            version=options.canary_version,
            stage=options.stage,
            reason="shadow stage applied",
            weight=in_force.canary_weight,
            shadow_share=in_force.shadow_share,
        )
        if (in_force.canary_weight, in_force.shadow_share) != (0, share):
            raise TrafficError(
                f"shadow in force: canary weight {in_force.canary_weight} %, {in_force.shadow_share} % copied "
                f"after setting 0 % and {share} % copied"
            )
        record.upstream_config = self.traffic.config_text() or ""
        split = probe_split(record.nginx_url, options.split_probe)
        record.split_probe = split.to_dict()
        if split.canary or split.production != split.total:
            raise TrafficError(
                f"shadow check: of {split.total} probe requests {split.canary} were answered by the canary and "
                f"{split.total - split.canary - split.production} by neither arm; users must get production's "
                "answers only"
            )

    def _weight_detail(self) -> str:
        probe = self.record.split_probe
        if probe is None:
            return "dry run: weight unchanged"
        if self.record.shadow_share:
            return (
                f"shadow: {self.record.shadow_share} % of requests copied to the canary; probe "
                f"{probe.get('production')}/{probe.get('total')} answered by production"
            )
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

    def _observe(self) -> StageVerdict:
        options, record = self.options, self.record
        settings = self._judge_settings()
        self._limit_s = settings.observation_limit_s  # the window, plus the extension under "extend"
        judge = make_judge(options.judge, settings, shadow_fraction(options))
        load = load_settings(options)
        rps = load.rate_rps or load.users * RPS_PER_USER
        previous, problem = load_rates(options.stack.run_dir)
        if problem:
            self.say(problem)
        auto = load_is_auto(options)
        self._auto_line = ""
        if auto:
            self._auto, rps = auto_rate(options, load, rps, settings)
            load, self._auto_line = sized(load, self._auto)
        plan_stage_percent, plan_rps = plan_point(options, rps)
        plan = (
            plan_stage(plan_stage_percent, plan_rps, settings, judged_mix(load, settings))
            if previous is None
            else plan_from(plan_stage_percent, settings, previous)
        )
        self._replan = Replanner(plan_stage_percent, settings, plan, previous)
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
        self._trace.shadow_share = round(100 * shadow_fraction(options))
        interval = max(5.0, options.tick)
        view = (
            self.progress(self.say, interval, self._limit_s, plan.pass_seconds[0])
            if self.progress
            else nullcontext(ProgressPrinter(self.say, interval=interval))
        )
        with ExitStack() as resources:
            source = metrics_source(options, record, resources, self.say)
            if auto and options.canary_url and options.production_url:  # not our services: users may be there
                self._auto = missing_rate(self._auto, real_traffic(source))
                load, self._auto_line = sized(load, self._auto)
                self.say(self._auto_line)
                record.plan = f"{self._auto_line}\n{record.plan}"
            sends = not options.no_load and not (auto and self._auto.load_rps <= 0)
            runs = load_runs(options, record, load, self._load_dir, self._limit_s) if sends else []
            try:
                base = source.snapshots(ARMS)
                base_canary, base_production = base["canary"], base["production"]
                for run in runs:
                    run.start()
                started = time.monotonic()
                with view as printer:
                    verdict = self._tick_loop(judge, source, base_canary, base_production, weight, started, printer)
                # Recorded before the load is stopped: a load that fails to stop must not lose the verdict.
                record.verdict = verdict.to_dict()
                if verdict.state == State.FAIL:
                    self.failed(f"verdict FAIL: {verdict.reason}")
            finally:
                stats = stop_all(runs)
                record.trace = self._trace.to_dict()
        if stats:
            record.load = {"runs": [item.to_dict() for item in stats]}
            for item in stats:
                self.say(item.format_table())
        if self._replan.rates is not None and self._replan.rates is not previous:
            record.rates = self._replan.rates.to_dict()
            # A shadow stage's totals count every request twice (the user's and its copy): the next stage
            # (users split by weight) must not plan from them.
            if not shadow_fraction(options):
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
            now = source.snapshots(ARMS)
            try:
                canary = now["canary"].minus(base_canary)
            except CounterResetError as exc:
                verdict = restarted_canary(judge.name, elapsed, str(exc))
                printer.update(verdict, options.stage)
                return verdict
            production = now["production"].minus(base_production)
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

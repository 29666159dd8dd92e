"""Load for a stage: the fragrance-ai user journeys (load/fragrance.py) run by locust in subprocesses,
or by the builtin thread engine, with stats read back per request name, served version and mode.

Modules: settings (LoadSettings, parse_mix), journey (the walks and their checks), pacing (rate and
request cap), tally and stats (figures), locust_engine / builtin (the engines), run (LoadRun).
"""

from canary_harness.loadgen.run import LoadRun, resolve_engine
from canary_harness.loadgen.settings import DEFAULT_MIX, LoadSettings, format_mix, parse_mix
from canary_harness.loadgen.stats import EndpointStats, LoadStats

__all__ = [
    "DEFAULT_MIX",
    "EndpointStats",
    "LoadRun",
    "LoadSettings",
    "LoadStats",
    "format_mix",
    "parse_mix",
    "resolve_engine",
]

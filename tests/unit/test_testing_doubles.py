"""The testing doubles' own rules: selected only when asked for, bad programming refused with its value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.config import StackSettings, resolve_stack_settings, resolve_traffic_settings
from canary_harness.errors import ConfigError, MetricsError, TrafficError
from canary_harness.stack_state import NginxRecord
from canary_harness.testing import ArmRates, Behaviour, CannedMetricsSource, MemoryTrafficController


def test_doubles_are_never_the_default() -> None:
    assert resolve_stack_settings(toml={}, environ={}).backend == "process"
    assert resolve_traffic_settings(toml={}, environ={}).nginx == "managed"


def test_doubles_are_selected_through_the_normal_configuration() -> None:
    assert resolve_stack_settings(toml={"stack": {"backend": "fake"}}, environ={}).backend == "fake"
    assert resolve_traffic_settings(toml={"traffic": {"nginx": "memory"}}, environ={}).nginx == "memory"


@pytest.mark.parametrize(("key", "raw"), [("FAKE_ERROR_RATE", "1.5"), ("FAKE_RPS", "fast"), ("FAKE_LATENCY_S", "-1")])
def test_bad_fake_behaviour_names_the_variable_and_value(key: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}='{raw}' \(fake service environment\)"):
        Behaviour.from_env({key: raw})


def test_behaviour_defaults_and_values() -> None:
    assert Behaviour.from_env({}) == Behaviour(rps=100.0, error_rate=0.0, latency_s=0.2)
    assert Behaviour.from_env({"FAKE_ERROR_RATE": "0.25"}).error_rate == 0.25


def test_canned_source_grows_with_its_clock_and_refuses_unknown_arms() -> None:
    now = [0.0]
    source = CannedMetricsSource({"canary": ArmRates(rps=10, error_rate=0.5, version="v2")}, clock=lambda: now[0])
    assert source.snapshot("canary").requests == 0
    now[0] = 3.0
    snapshot = source.snapshot("canary")
    assert (snapshot.requests, snapshot.errors_5xx, snapshot.version) == (30, 15, "v2")
    with pytest.raises(MetricsError, match="production"):
        source.snapshot("production")
    source.fail_next("canary", MetricsError("programmed"))
    with pytest.raises(MetricsError, match="programmed"):
        source.snapshot("canary")
    with pytest.raises(MetricsError, match="unknown arms"):
        CannedMetricsSource({"staging": ArmRates()})


def test_memory_controller_without_its_router_says_where_it_lives(tmp_path: Path) -> None:
    controller = MemoryTrafficController(tmp_path / "nginx", production="127.0.0.1:1", canary="127.0.0.1:2")
    assert not controller.is_running()
    with pytest.raises(TrafficError, match="no in-memory router runs for .* in this process"):
        controller.canary_weight()
    with pytest.raises(TrafficError, match=r"canary weight 101: must be an integer in 0\.\.100"):
        controller.start(101)
    assert not controller.is_running()


def test_nginx_record_keeps_its_router_and_reads_old_state_files(tmp_path: Path) -> None:
    record = NginxRecord(dir=tmp_path, host="127.0.0.1", port=1, production="a:1", canary="b:2", router="memory")
    assert NginxRecord.from_json(record.to_json(), "test").router == "memory"
    old = {key: value for key, value in record.to_json().items() if key != "router"}
    assert NginxRecord.from_json(old, "test").router == "managed"
    assert StackSettings().backend == "process"

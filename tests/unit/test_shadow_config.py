"""Stage 0 (shadow) in the configuration: the stage list, the label, the [shadow] policy, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.config import TrafficSettings
from canary_harness.configuration.parsers import parse_shadow_share, parse_stage
from canary_harness.errors import ConfigError, TrafficError
from canary_harness.rollout import parse_stages
from canary_harness.stages import shadow_plan_point, stage_label
from canary_harness.traffic.external import ExternalNginxController
from canary_harness.traffic.shadow_policy import ShadowPolicy


def test_the_shadow_stage_may_open_a_rollout() -> None:
    assert parse_stages("0,1,5,25,100", "from --stages") == (0, 1, 5, 25, 100)
    assert parse_stages("shadow,1,100", "from --stages") == (0, 1, 100)
    with pytest.raises(ConfigError, match=r"stages '1,0,100' \(from --stages\): must be strictly ascending"):
        parse_stages("1,0,100", "from --stages")
    with pytest.raises(ConfigError, match=r"'-1' is not an integer percentage in 1\.\.100 \(or 0: shadow\)"):
        parse_stages("-1,100", "from --stages")


@pytest.mark.parametrize(("raw", "stage"), [("0", 0), ("shadow", 0), (" Shadow ", 0), ("5", 5), ("100", 100)])
def test_stage_zero_is_the_shadow_stage(raw: str, stage: int) -> None:
    assert parse_stage(raw, "from --stage") == stage


@pytest.mark.parametrize("raw", ["-1", "101", "5.5", "mirror", ""])
def test_bad_stage_names_the_value_the_source_and_the_choices(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"must be 1\.\.100, or 0 / shadow") as caught:
        parse_stage(raw, "from --stage")
    assert repr(raw) in str(caught.value) and "from --stage" in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "101", "50%", "half", "2.5"])
def test_bad_shadow_share_names_the_value_and_the_source(raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"shadow share {raw!r} \(from --shadow-share\): .* 1\.\.100"):
        parse_shadow_share(raw, "from --shadow-share")


def test_labels() -> None:
    assert [stage_label(stage) for stage in (0, 1, 100, None)] == ["shadow", "1%", "100%", "?"]


def test_shadow_policy_reads_drop_routes() -> None:
    assert ShadowPolicy.from_mapping({}, "canary.toml [shadow]").drop == ()
    assert ShadowPolicy.from_mapping({"drop": ["/payments", "/a/b"]}, "s").drop == ("/payments", "/a/b")


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"drop": "/payments"}, "drop = '/payments': must be a list of paths"),
        ({"drop": [1]}, "drop = [1]: must be a list of paths"),
        ({"drop": ["payments"]}, "shadow drop route 'payments'"),
        ({"share": 50}, "unknown key 'share' (known: drop)"),
    ],
)
def test_bad_shadow_policy_names_the_value_and_the_section(section: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ShadowPolicy.from_mapping(section, "canary.toml [shadow]")
    assert needle in str(caught.value) and "canary.toml [shadow]" in str(caught.value)


def test_the_external_nginx_refuses_a_shadow_and_says_why(tmp_path: Path) -> None:
    settings = TrafficSettings(nginx="external", nginx_dir=tmp_path, nginx_url="http://127.0.0.1:9")
    controller = ExternalNginxController(settings)
    with pytest.raises(TrafficError, match=r"no shadow relay .* start at stage 1"):
        controller.set_shadow(100, reason="stage 0")
    assert not (tmp_path / "conf.d").exists(), "a refused shadow still wrote the upstream file"


def test_plan_of_the_shadow_stage_counts_the_copies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stage", "0", "--rps", "50"]) == 0
    out = capsys.readouterr().out
    # 50 users' req/s, each copied: the canary gets 50 req/s beside production's 50.
    assert "shadow stage: 50 req/s of users" in out and "Stage 50 % at 100 rps: canary gets 50 rps" in out
    assert shadow_plan_point(0.25, 40.0) == (20, 50.0)

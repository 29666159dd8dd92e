"""The NGINX grouping header as a setting: resolved from canary.toml / the environment, validated, and rendered
into the access log's fields (the real template; tests/integration/test_group_header.py runs it)."""

from __future__ import annotations

import pytest

from canary_harness.config import resolve_stack_settings
from canary_harness.errors import ConfigError
from canary_harness.traffic.nginx import MAIN_TEMPLATE, default_template_dir
from canary_harness.traffic.render import render_main


def test_the_setting_reaches_the_stack_from_toml_or_environment() -> None:
    assert resolve_stack_settings(toml={}, environ={}).group_header == "X-LLM-Mode"
    toml = {"traffic": {"group_header": "X-Route-Class"}}
    assert resolve_stack_settings(toml=toml, environ={}).group_header == "X-Route-Class"
    environ = {"CANARY_GROUP_HEADER": "X-Tenant"}
    assert resolve_stack_settings(toml=toml, environ=environ).group_header == "X-Tenant"


@pytest.mark.parametrize("bad", ["X Route", "X-Route;", "", "-X"])
def test_a_bad_header_name_is_refused_naming_its_source(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"header name .* \(from ops.toml \[traffic\] group_header\): must be"):
        resolve_stack_settings(toml={"traffic": {"group_header": bad}}, environ={}, toml_file="ops.toml")


def test_the_template_logs_the_header_as_the_group() -> None:
    template = (default_template_dir() / MAIN_TEMPLATE).read_text()
    text = render_main(template, listen_host="127.0.0.1", listen_port=8080, group_header="X-Route-Class")
    assert '"group":"$upstream_http_x_route_class","group_asked":"$http_x_route_class"' in text
    assert "x_llm_mode" not in text

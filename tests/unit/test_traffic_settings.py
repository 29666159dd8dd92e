"""canary.toml [traffic]: managed or external NGINX, every bad value named with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.config import StackSettings, resolve_traffic_settings
from canary_harness.errors import ConfigError, TrafficError
from canary_harness.traffic.external import ExternalNginxController

EXTERNAL = {"nginx": "external", "nginx_dir": "/srv/nginx", "nginx_url": "http://127.0.0.1:8080/"}


def test_default_is_managed() -> None:
    settings = resolve_traffic_settings(environ={})
    assert settings.nginx == "managed" and settings.nginx_dir is None


def test_external_from_toml_takes_addresses_from_stack() -> None:
    stack = StackSettings(production_port=18000, canary_port=18001, run_dir=Path("/tmp/run"))
    settings = resolve_traffic_settings(
        toml={"traffic": {**EXTERNAL, "nginx_container": "fragrance-ai-nginx"}}, stack=stack, environ={}
    )
    assert settings.nginx_dir == Path("/srv/nginx") and settings.nginx_url == "http://127.0.0.1:8080"
    assert (settings.production, settings.canary) == ("127.0.0.1:18000", "127.0.0.1:18001")
    assert settings.nginx_container == "fragrance-ai-nginx" and settings.lock_dir == Path("/tmp/run")
    controller = ExternalNginxController(settings)
    assert controller.upstream_conf == Path("/srv/nginx/conf.d/upstream.conf")


def test_environment_wins_over_toml() -> None:
    settings = resolve_traffic_settings(
        toml={"traffic": {"nginx": "managed"}},
        environ={
            "CANARY_NGINX": "external",
            "CANARY_NGINX_DIR": "/etc/nginx",
            "CANARY_NGINX_URL": "http://127.0.0.1:80",
        },
    )
    assert settings.nginx == "external" and settings.nginx_dir == Path("/etc/nginx")


@pytest.mark.parametrize(
    ("section", "environ", "expected"),
    [
        ({"nginx": "system"}, {}, "'system' (from canary.toml [traffic] nginx): must be one of managed, external"),
        ({}, {"CANARY_NGINX": "both"}, "'both' (from environment CANARY_NGINX)"),
        ({"nginx": "external", "nginx_url": "http://127.0.0.1:80"}, {}, "needs nginx_dir"),
        ({"nginx": "external", "nginx_dir": "/etc/nginx"}, {}, "needs nginx_url"),
        ({**EXTERNAL, "nginx_url": "127.0.0.1:8080"}, {}, "URL '127.0.0.1:8080' (from canary.toml [traffic] nginx_url"),
        ({**EXTERNAL, "nginx_container": " "}, {}, "(from canary.toml [traffic] nginx_container): must not be empty"),
        ({**EXTERNAL, "reload_timeout": 0}, {}, "value 0 (from canary.toml [traffic] reload_timeout)"),
    ],
)
def test_bad_traffic_settings_are_named(section: dict[str, object], environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_traffic_settings(toml={"traffic": section}, environ=environ)
    assert expected in str(info.value)


def test_traffic_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"\[traffic\] must be a table"):
        resolve_traffic_settings(toml={"traffic": "external"}, environ={})


def test_controller_refuses_managed_settings() -> None:
    with pytest.raises(TrafficError, match="needs nginx = 'external'"):
        ExternalNginxController(resolve_traffic_settings(environ={}))


def test_controller_refuses_bad_weight_before_anything() -> None:
    controller = ExternalNginxController(resolve_traffic_settings(toml={"traffic": EXTERNAL}, environ={}))
    for bad in (-1, 101, True, 5.5):
        with pytest.raises(TrafficError, match="must be an integer in 0..100"):
            controller.set_canary_weight(bad)  # type: ignore[arg-type]

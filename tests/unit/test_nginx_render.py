"""Rendering the NGINX templates: weights, the weight-0 rule, strict placeholders, shipped features."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from canary_harness.errors import TrafficError
from canary_harness.traffic.render import (
    UpstreamWeights,
    parse_upstream_weights,
    render_main,
    render_template,
    render_upstream,
)

NGINX_DIR = Path(__file__).resolve().parents[2] / "nginx"
UPSTREAM_TEMPLATE = (NGINX_DIR / "conf.d" / "upstream.conf.template").read_text()
MAIN_TEMPLATE = (NGINX_DIR / "nginx.canary.conf").read_text()
PROD, CANARY = "127.0.0.1:8000", "127.0.0.1:8001"


def server_line(text: str, address: str) -> str:
    """The server directive for ``address`` in a rendered upstream."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(f"server {address} ")]
    assert len(lines) == 1, text
    return lines[0]


def render(canary: int) -> str:
    return render_upstream(UPSTREAM_TEMPLATE, 100 - canary, canary, production=PROD, canary=CANARY)


def test_five_percent_renders_both_weights() -> None:
    text = render(5)
    assert "weight=95" in server_line(text, PROD)
    assert "weight=5" in server_line(text, CANARY)
    assert "down" not in server_line(text, CANARY)


def test_zero_percent_marks_the_canary_down() -> None:
    text = render(0)
    assert server_line(text, CANARY).split()[2] == "down"
    assert "weight=100" in server_line(text, PROD)
    assert "weight=0" not in text


def test_hundred_percent_marks_production_down() -> None:
    text = render(100)
    assert server_line(text, PROD).split()[2] == "down"
    assert "weight=100" in server_line(text, CANARY)
    assert "weight=0" not in text


@pytest.mark.parametrize("canary", range(0, 101))
def test_every_weight_reads_back_as_rendered(canary: int) -> None:
    text = render(canary)
    weights = parse_upstream_weights(text, production=PROD, canary=CANARY)
    assert weights == UpstreamWeights(100 - canary, canary)
    assert not re.search(r"\bweight=0\b", text)
    assert "${" not in re.sub(r"\$\{[a-z_]+\}", "", text), "an upper-case placeholder was left unrendered"


@pytest.mark.parametrize(
    ("production", "canary", "needle"),
    [(95, 6, "add up to 100"), (101, -1, "101"), (50.5, 49.5, "50.5"), (True, 99, "True")],
)
def test_bad_weights_are_refused_naming_the_value(production: object, canary: object, needle: str) -> None:
    with pytest.raises(TrafficError, match=re.escape(needle)):
        render_upstream(UPSTREAM_TEMPLATE, production, canary)  # type: ignore[arg-type]


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:0", "http://127.0.0.1:8001", "127.0.0.1:80 x"])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(TrafficError, match=re.escape(repr(address))):
        render_upstream(UPSTREAM_TEMPLATE, 100, 0, production=PROD, canary=address)


def test_production_and_canary_must_differ() -> None:
    with pytest.raises(TrafficError, match="share the address"):
        render_upstream(UPSTREAM_TEMPLATE, 100, 0, production=PROD, canary=PROD)


def test_unknown_placeholder_is_named() -> None:
    with pytest.raises(TrafficError, match=r"\$\{CANARY_WEIGTH\}"):
        render_upstream(UPSTREAM_TEMPLATE.replace("${CANARY_WEIGHT}", "${CANARY_WEIGTH}", 1), 95, 5)


def test_template_without_a_weight_placeholder_is_refused() -> None:
    hard_coded = UPSTREAM_TEMPLATE.replace("weight=${CANARY_WEIGHT}", "weight=50")
    hard_coded = hard_coded.replace('"${CANARY_WEIGHT}"', '"50"')
    with pytest.raises(TrafficError, match=r"\$\{CANARY_WEIGHT\}"):
        render_upstream(hard_coded, 95, 5)


def test_rendered_weights_must_match_the_request() -> None:
    # A template that renders a weight into the wrong server would silently invert the split.
    swapped = UPSTREAM_TEMPLATE.replace("weight=${PRODUCTION_WEIGHT}", "weight=@P@")
    swapped = swapped.replace("weight=${CANARY_WEIGHT}", "weight=${PRODUCTION_WEIGHT}")
    swapped = swapped.replace("weight=@P@", "weight=${CANARY_WEIGHT}")
    with pytest.raises(TrafficError, match="differ from the requested"):
        render_upstream(swapped, 95, 5, production=PROD, canary=CANARY)


def test_nginx_variables_pass_through_untouched() -> None:
    text = render_template("a ${X} $upstream_addr ${request_id} $$", {"X": "1"})
    assert text == "a 1 $upstream_addr ${request_id} $$"


def test_parse_refuses_an_unknown_server_in_the_upstream() -> None:
    text = render(5).replace("    keepalive 32;", "    server 10.0.0.1:80;\n    keepalive 32;")
    with pytest.raises(TrafficError, match="10.0.0.1:80"):
        parse_upstream_weights(text, production=PROD, canary=CANARY)


def test_parse_reads_only_the_backend_upstream() -> None:
    text = render(5) + "\nupstream other {\n    server 10.0.0.1:80;\n}\nserver { listen 127.0.0.1:9; }\n"
    assert parse_upstream_weights(text, production=PROD, canary=CANARY) == UpstreamWeights(95, 5)
    with pytest.raises(TrafficError, match="exactly one"):
        parse_upstream_weights(text.replace("fragrance_backend", "elsewhere"), production=PROD, canary=CANARY)


def test_main_config_listens_on_loopback_with_user_when_root() -> None:
    text = render_main(MAIN_TEMPLATE, listen_host="127.0.0.1", listen_port=18080, user="root")
    assert re.search(r"^\s*listen 127\.0\.0\.1:18080;", text, re.MULTILINE)
    assert re.search(r"^user root;", text, re.MULTILINE)
    unprivileged = render_main(MAIN_TEMPLATE, listen_host="::1", listen_port=18080, user=None)
    assert "listen [::1]:18080;" in unprivileged
    assert not re.search(r"^user ", unprivileged, re.MULTILINE)


@pytest.mark.parametrize(
    ("kwargs", "needle"), [({"listen_port": 0}, "listen port 0"), ({"worker_processes": "0"}, "'0'")]
)
def test_main_config_refuses_bad_values(kwargs: dict[str, object], needle: str) -> None:
    arguments: dict[str, object] = {"listen_host": "127.0.0.1", "listen_port": 8080, **kwargs}
    with pytest.raises(TrafficError, match=re.escape(needle)):
        render_main(MAIN_TEMPLATE, **arguments)  # type: ignore[arg-type]


# ---------------------------------------------------------------- what the shipped templates promise
def directive(text: str, name: str) -> list[str]:
    """Every value of directive ``name`` (comments stripped)."""
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [m.strip() for m in re.findall(rf"^\s*{name}\s+([^;]*);", body, re.MULTILINE)]


def test_failover_covers_errors_timeouts_and_gateway_statuses_but_never_resends_posts() -> None:
    (value,) = directive(MAIN_TEMPLATE, "proxy_next_upstream")
    assert set(value.split()) == {"error", "timeout", "http_502", "http_503", "http_504"}
    assert "non_idempotent" not in MAIN_TEMPLATE.split("proxy_next_upstream ", 1)[1].split(";", 1)[0]


def test_passive_health_checks_and_keepalive() -> None:
    text = render(5)
    for address in (PROD, CANARY):
        assert re.search(r"max_fails=\d+ fail_timeout=\d+s", server_line(text, address))
    assert directive(text, "keepalive")
    assert set(directive(MAIN_TEMPLATE, "proxy_http_version")) == {"1.1"}  # every hop, the shadow relay too


def test_status_locations_are_loopback_only() -> None:
    for location in ("/nginx_status", "/__canary/state"):
        block = MAIN_TEMPLATE.split(f"location = {location}", 1)[1].split("}", 1)[0]
        assert "allow 127.0.0.1;" in block and "deny all;" in block
    assert "stub_status;" in MAIN_TEMPLATE


def test_headers_and_canary_log_use_the_served_upstream() -> None:
    headers = directive(MAIN_TEMPLATE, "add_header")
    assert "X-Upstream $canary_upstream_role always" in headers
    assert "X-Upstream-Addr $canary_served_addr always" in headers
    assert "X-Served-Version $upstream_http_x_app_version always" in headers
    logs = directive(MAIN_TEMPLATE, "access_log")
    assert "logs/canary_access.jsonl canary_json if=$canary_log_flag" in logs

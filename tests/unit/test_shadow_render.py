"""Rendering stage 0 (shadow): the copy share, the drop routes, the relay, and reading them back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from canary_harness.errors import TrafficError
from canary_harness.traffic.render import (
    Shadow,
    parse_shadow_share,
    parse_upstream_weights,
    render_main,
    render_upstream,
)

NGINX_DIR = Path(__file__).resolve().parents[2] / "nginx"
UPSTREAM_TEMPLATE = (NGINX_DIR / "conf.d" / "upstream.conf.template").read_text()
MAIN_TEMPLATE = (NGINX_DIR / "nginx.canary.conf").read_text()
PROD, CANARY = "127.0.0.1:8000", "127.0.0.1:8001"


def render(shadow: Shadow, canary: int = 0) -> str:
    return render_upstream(UPSTREAM_TEMPLATE, 100 - canary, canary, production=PROD, canary=CANARY, shadow=shadow)


def block(text: str, head: str) -> str:
    """The body of the block opened by ``head`` (up to its closing brace)."""
    return text.split(head, 1)[1].split("}", 1)[0]


@pytest.mark.parametrize(
    ("share", "lines"),
    [(0, ["* 0;"]), (1, ["1% 1;", "* 0;"]), (37, ["37% 1;", "* 0;"]), (99, ["99% 1;", "* 0;"]), (100, ["* 1;"])],
)
def test_share_renders_a_split_clients_that_sums_to_100(share: int, lines: list[str]) -> None:
    text = render(Shadow(share))
    body = block(text, "$canary_shadow_pick {")
    assert [line.strip() for line in body.strip().splitlines()] == lines
    assert parse_shadow_share(text) == share


def test_shadow_keeps_the_canary_down_for_users() -> None:
    text = render(Shadow(100))
    assert parse_upstream_weights(text, production=PROD, canary=CANARY).canary == 0
    assert re.search(rf"server {re.escape(CANARY)} down", text)


def test_shadow_with_a_canary_weight_is_refused() -> None:
    with pytest.raises(TrafficError, match=r"shadow share 100% with canary weight 5%"):
        render(Shadow(100), canary=5)


def test_drop_routes_render_as_anchored_prefix_regexes() -> None:
    text = render(Shadow(100, ("/payments", "/v1.2/orders/")))
    body = block(text, "map $request_uri $canary_shadow_route {")
    assert '"~^/payments(?:[/?]|$)" 0;' in body
    assert r'"~^/v1\.2/orders(?:[/?]|$)" 0;' in body
    pattern = re.compile(r"^/payments(?:[/?]|$)")
    assert pattern.match("/payments") and pattern.match("/payments/refund") and pattern.match("/payments?id=1")
    assert not pattern.match("/paymentsx")
    assert "default 1;" in body


def test_no_drop_route_copies_everything() -> None:
    body = block(render(Shadow(100)), "map $request_uri $canary_shadow_route {")
    assert "every route is copied" in body and "~" not in body


@pytest.mark.parametrize(
    ("share", "drop", "needle"),
    [
        (101, (), "shadow share 101"),
        (-1, (), "shadow share -1"),
        (True, (), "shadow share True"),
        (50, ("evolve",), "shadow drop route 'evolve'"),
        (50, ("/a b",), "shadow drop route '/a b'"),
        (50, ('/x";',), "shadow drop route"),
    ],
)
def test_bad_shadow_values_are_refused_naming_the_value(share: object, drop: tuple[str, ...], needle: str) -> None:
    with pytest.raises(TrafficError, match=re.escape(needle)):
        Shadow(share, drop)  # type: ignore[arg-type]


def test_a_file_from_before_shadow_stages_reads_as_no_copies() -> None:
    assert parse_shadow_share('map $pid $canary_generation { default "1"; }\n') == 0


def test_state_reports_the_shadow_share() -> None:
    state = block(MAIN_TEMPLATE, "location = /__canary/state {")
    assert '"shadow_share":$canary_shadow_share' in state


def location(text: str, name: str) -> str:
    """The body of ``location = name`` (up to the closing brace at its own indentation)."""
    return text.split(f"location = {name} {{", 1)[1].split("\n        }", 1)[0]


def test_user_location_mirrors_and_the_relay_marks_and_bounds_the_copies() -> None:
    main = render_main(MAIN_TEMPLATE, listen_host="127.0.0.1", listen_port=8080)
    users = block(main, "location / {\n            mirror /__canary/shadow;")
    assert "mirror_request_body on;" in users
    first_hop = location(main, "/__canary/shadow")
    assert "internal;" in first_hop and "return 204;" in first_hop
    assert "proxy_pass http://$canary_relay_host:$server_port/__canary/relay;" in first_hop
    # The relay answers before the copy reaches the canary: the first hop's timeouts stay short.
    assert "proxy_read_timeout 1s;" in first_hop and "proxy_connect_timeout 100ms;" in first_hop
    relay = location(main, "/__canary/relay")
    assert "$canary_relay_local = 0" in relay and "return 403;" in relay
    assert "empty_gif;" in relay and "limit_conn canary_shadow 1024;" in relay and "access_log off;" in relay
    copy = location(main, "/__canary/copy")
    assert "internal;" in copy and "proxy_set_header X-Canary-Shadow 1;" in copy
    assert "proxy_ignore_client_abort on;" in copy and "proxy_read_timeout 5s;" in copy


def test_only_nginx_itself_may_call_the_relay() -> None:
    pattern = MAIN_TEMPLATE.split('map "$remote_addr $server_addr" $canary_relay_local {', 1)[1].split(" 1;", 1)[0]
    regex = pattern.strip().strip('"').lstrip("~").replace("(?<canary_relay_from>", "(?P<a>")
    regex = regex.replace(r"\k<canary_relay_from>", "(?P=a)")
    assert re.match(regex, "127.0.0.1 127.0.0.1") and re.match(regex, "::1 ::1")
    assert not re.match(regex, "10.0.0.7 127.0.0.1") and not re.match(regex, "127.0.0.10 127.0.0.1")

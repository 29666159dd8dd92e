"""Pure rendering of the NGINX templates: placeholders in, configuration text out. No I/O.

Placeholders are ``${UPPER_CASE}`` so that NGINX's own lower-case variables (``$upstream_addr``,
``${request_id}``) pass through untouched. Every placeholder in a template must have a value and every
value must be a placeholder of the template; anything else is a TrafficError naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from canary_harness.configuration.parsers import HEADER_NAME_RE
from canary_harness.errors import TrafficError

PLACEHOLDER_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_ADDRESS_RE = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
_GENERATION_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A server directive whose weight rendered to 0: NGINX refuses weight=0, so it becomes "down".
_ZERO_WEIGHT_RE = re.compile(r"^(\s*server\s+\S+.*?)\bweight=0(?=[\s;])", re.MULTILINE)
_SERVER_RE = re.compile(r"^\s*server\s+([^\s;{}]+)([^;{}]*);", re.MULTILINE)
UPSTREAM_NAME = "fragrance_backend"
# The header that carries a request's latency group (fragrance-ai answers its LLM mode in it).
DEFAULT_GROUP_HEADER = "X-LLM-Mode"
_UPSTREAM_BLOCK_RE = re.compile(rf"^\s*upstream\s+{UPSTREAM_NAME}\s*\{{([^{{}}]*)\}}", re.MULTILINE)
# A route of the shadow drop list: a plain path (its segments and everything below them are not copied).
_ROUTE_RE = re.compile(r"^/[A-Za-z0-9/_.~-]*$")
_SHADOW_SHARE_RE = re.compile(r"\$canary_shadow_share\s*\{\s*default\s+\"(\d+)\";")


@dataclass(frozen=True)
class UpstreamWeights:
    """The weights a rendered upstream file gives each server (0 for a server marked ``down``)."""

    production: int
    canary: int


@dataclass(frozen=True)
class Shadow:
    """Stage 0 (shadow): the share in percent of production's requests NGINX copies to the canary (0: no
    copies) and the routes never copied (path prefixes, e.g. ``/payments``: side effects that must not run
    twice). Users are served by production only while a share is set."""

    share: int = 0
    drop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        share = self.share
        if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
            raise TrafficError(f"shadow share {share!r}: must be an integer percentage in 0..100")
        for route in self.drop:
            if not isinstance(route, str) or not _ROUTE_RE.match(route):
                raise TrafficError(
                    f"shadow drop route {route!r}: must be a path starting with '/' "
                    "(letters, digits, '/', '_', '.', '~', '-')"
                )


NO_SHADOW = Shadow()


def render_template(template_text: str, values: Mapping[str, str], *, source: str = "template") -> str:
    """Replace every ``${NAME}`` in ``template_text`` with ``values[NAME]``; strict both ways."""
    names = set(PLACEHOLDER_RE.findall(template_text))
    missing = sorted(names - set(values))
    if missing:
        names_text = ", ".join("${" + m + "}" for m in missing)
        raise TrafficError(f"{source}: no value for placeholder(s) {names_text}")
    unused = sorted(set(values) - names)
    if unused:
        raise TrafficError(
            f"{source}: placeholder(s) {', '.join('${' + u + '}' for u in unused)} missing from the template"
        )
    return PLACEHOLDER_RE.sub(lambda match: values[match.group(1)], template_text)


def check_address(address: str, what: str) -> str:
    """An upstream address ``host:port`` (no scheme, no spaces); TrafficError naming it otherwise."""
    if not _ADDRESS_RE.match(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise TrafficError(f"{what} address {address!r}: must be host:port, e.g. 127.0.0.1:8000")
    return address


def render_upstream(
    template_text: str,
    production_weight: int,
    canary_weight: int,
    *,
    production: str = "127.0.0.1:8000",
    canary: str = "127.0.0.1:8001",
    generation: str = "0",
    shadow: Shadow = NO_SHADOW,
    source: str = "conf.d/upstream.conf.template",
) -> str:
    """Render the weighted upstream; weights are integer percentages adding up to 100.

    A server at weight 0 is rendered ``down`` (NGINX has no ``weight=0``), so 0 % sends it nothing.
    ``shadow`` (only with the canary at weight 0) renders the maps that decide which requests are copied.
    """
    for name, weight in (("production", production_weight), ("canary", canary_weight)):
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise TrafficError(f"{name} weight {weight!r}: must be an integer in 0..100")
    if production_weight + canary_weight != 100:
        raise TrafficError(f"weights production={production_weight} canary={canary_weight}: must add up to 100")
    check_address(production, "production")
    check_address(canary, "canary")
    if production == canary:
        raise TrafficError(f"production and canary share the address {production!r}: they must differ")
    if not _GENERATION_RE.match(generation):
        raise TrafficError(f"generation {generation!r}: letters, digits, '.', '_', '-' only")
    if shadow.share and canary_weight:
        raise TrafficError(
            f"shadow share {shadow.share}% with canary weight {canary_weight}%: a shadow stage serves users "
            "from production only (canary weight 0)"
        )
    text = render_template(
        template_text,
        {
            "PRODUCTION_ADDR": production,
            "CANARY_ADDR": canary,
            "PRODUCTION_WEIGHT": str(production_weight),
            "CANARY_WEIGHT": str(canary_weight),
            "GENERATION": generation,
            "SHADOW_SHARE": str(shadow.share),
            "SHADOW_SPLIT": _shadow_split(shadow.share),
            "SHADOW_DROP": _shadow_drop(shadow.drop),
        },
        source=source,
    )
    text = _ZERO_WEIGHT_RE.sub(r"\1down", text)
    rendered = parse_upstream_weights(text, production=production, canary=canary, source=source)
    if rendered != UpstreamWeights(production_weight, canary_weight):
        raise TrafficError(
            f"{source}: rendered weights {rendered} differ from the requested "
            f"production={production_weight} canary={canary_weight}; the template must use "
            "weight=${PRODUCTION_WEIGHT} and weight=${CANARY_WEIGHT} on the two server lines"
        )
    return text


def _shadow_split(share: int) -> str:
    # split_clients wants shares below 100 %: the two ends are written as the catch-all alone.
    if share == 0:
        return "    * 0;"
    if share == 100:
        return "    * 1;"
    return f"    {share}% 1;\n    * 0;"


def _shadow_drop(drop: tuple[str, ...]) -> str:
    if not drop:
        return "    # (every route is copied)"
    # The route itself, anything below it, or it with a query string; '.' is the only regex character a
    # checked route can hold.
    return "\n".join(f'    "~^{route.rstrip("/").replace(".", chr(92) + ".")}(?:[/?]|$)" 0;' for route in drop)


def parse_shadow_share(text: str, *, source: str = "upstream.conf") -> int:
    """The shadow share a rendered upstream file holds (0 for a file rendered before shadow stages existed)."""
    found = _SHADOW_SHARE_RE.findall(text)
    if len(found) > 1:
        raise TrafficError(f"{source}: more than one $canary_shadow_share map")
    return int(found[0]) if found else 0


def parse_upstream_weights(
    text: str, *, production: str, canary: str, source: str = "upstream.conf"
) -> UpstreamWeights:
    """Read back the weight each server of the ``fragrance_backend`` upstream gets (``down`` = 0)."""
    blocks = _UPSTREAM_BLOCK_RE.findall(text)
    if len(blocks) != 1:
        raise TrafficError(f"{source}: expected exactly one 'upstream {UPSTREAM_NAME} {{...}}' block")
    found: dict[str, int] = {}
    for address, params in _SERVER_RE.findall(blocks[0]):
        tokens = params.split()
        if "down" in tokens:
            weight = 0
        else:
            weights = [t.removeprefix("weight=") for t in tokens if t.startswith("weight=")]
            weight = int(weights[0]) if weights and weights[0].isascii() and weights[0].isdigit() else 1
        if address in found:
            raise TrafficError(f"{source}: server {address} appears more than once")
        found[address] = weight
    for role, address in (("production", production), ("canary", canary)):
        if address not in found:
            raise TrafficError(f"{source}: no server line for the {role} address {address}")
    extra = sorted(set(found) - {production, canary})
    if extra:
        raise TrafficError(f"{source}: unexpected server(s) {', '.join(extra)}")
    return UpstreamWeights(production=found[production], canary=found[canary])


def header_variable(header: str) -> str:
    """NGINX's name of a header in its variables: lower case, '_' for '-' (X-LLM-Mode -> ``$http_x_llm_mode``)."""
    return header.lower().replace("-", "_")


def render_main(
    template_text: str,
    *,
    listen_host: str,
    listen_port: int,
    worker_processes: str = "auto",
    user: str | None = None,
    group_header: str = DEFAULT_GROUP_HEADER,
    source: str = "nginx.canary.conf",
) -> str:
    """Render the main configuration: listen address, workers, (when run as root) the worker user, and the
    header whose value the access log records as each request's latency group."""
    if not 0 < listen_port < 65536:
        raise TrafficError(f"listen port {listen_port!r}: must be in 1..65535")
    if not re.fullmatch(r"auto|[1-9]\d{0,2}", worker_processes):
        raise TrafficError(f"worker_processes {worker_processes!r}: must be 'auto' or a positive integer")
    if user is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", user):
        raise TrafficError(f"user {user!r}: not a valid user name")
    if not HEADER_NAME_RE.match(group_header):
        raise TrafficError(f"group header {group_header!r}: must be an HTTP header name (letters, digits, '-')")
    host = f"[{listen_host}]" if ":" in listen_host and not listen_host.startswith("[") else listen_host
    return render_template(
        template_text,
        {
            "LISTEN_HOST": host,
            "LISTEN_PORT": str(listen_port),
            "WORKER_PROCESSES": worker_processes,
            "USER_DIRECTIVE": f"user {user};" if user else "# (not root: workers run as the invoking user)",
            "GROUP_HEADER": header_variable(group_header),
        },
        source=source,
    )

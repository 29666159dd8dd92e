"""``MemoryTrafficController``: a TrafficController whose weights live in a dict (``[traffic] nginx = "memory"``).

The split is served by a tiny in-thread HTTP router on the stack's NGINX address: each request goes to
production or the canary by smooth weighted round robin (NGINX's own algorithm, so 400 probe requests at
5 % reach the canary exactly 20 times), and the answer carries ``X-Upstream``. Every change gets a new
generation; ``history`` keeps them all. Programmable, the way httpx's ``MockTransport`` is:

* ``refuse(times, reason)``: the next ``times`` weight changes raise TrafficError and change nothing;
* ``set_configured(weight)``: the "configuration file" holds another weight than the one in force (what
  a rollback must rewrite).

A shadow stage (``set_shadow``) serves every request from production and copies ``share`` % of them (the
same smooth round robin, so exactly ``share`` % of any run of 100) to the canary in a background thread,
with ``X-Canary-Shadow: 1``; ``shadow_copies`` counts the copies sent.

Routers live in this process, keyed by the stack's NGINX directory, so that every
``MemoryTrafficController`` built from the same state record sees the same split. Never a default.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from canary_harness.errors import TrafficError
from canary_harness.testing.httpd import Answer, ThreadedHTTPServer
from canary_harness.traffic.protocol import InForce
from canary_harness.traffic.render import Shadow

if TYPE_CHECKING:
    from canary_harness.stack_state import NginxRecord

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class RouterState:
    """The dict the weights live in, plus what the tests program and read."""

    canary_weight: int = 0
    configured: int | None = None  # the "file" for the next reload; None: the weight in force
    generation: int = 0
    shadow_share: int = 0  # stage 0: percent of requests copied to the canary
    shadow_drop: tuple[str, ...] = ()
    shadow_copies: int = 0
    refusals: list[str] = field(default_factory=list)
    history: list[tuple[int, str]] = field(default_factory=list)  # (weight, reason) of each change in force


class MemoryRouter:
    """The in-thread HTTP router of one stack: production and canary addresses, the state, the server."""

    def __init__(self, host: str, port: int, production: str, canary: str, canary_weight: int) -> None:
        """Bind ``host:port`` (TrafficError if taken) and serve at once."""
        self.production, self.canary = production, canary
        self.state = RouterState(canary_weight=canary_weight, generation=1)
        self._lock = threading.Lock()
        self._current = {"production": 0, "canary": 0}  # smooth weighted round robin
        self._copy_credit = 0  # the same for the copies of a shadow stage
        self._client = httpx.Client(timeout=30.0)
        # Copies run beside the user's request, as NGINX's relay sends them: a slow canary delays no answer.
        self._copies = ThreadPoolExecutor(max_workers=8, thread_name_prefix="memory-router-shadow")
        self.server = ThreadedHTTPServer(host, port, self._forward, error=TrafficError)

    def _pick(self) -> str:
        with self._lock:
            weights = {"production": 100 - self.state.canary_weight, "canary": self.state.canary_weight}
            for role, weight in weights.items():
                self._current[role] += weight
            role = max(self._current, key=lambda name: self._current[name])
            self._current[role] -= 100
            return role

    def _copy_now(self, path: str) -> bool:
        with self._lock:
            state = self.state
            if not state.shadow_share or any(_under(path, route) for route in state.shadow_drop):
                return False
            self._copy_credit += state.shadow_share
            if self._copy_credit < 100:
                return False
            self._copy_credit -= 100
            state.shadow_copies += 1
            return True

    def _send_copy(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        try:
            self._client.request(
                method, f"http://{self.canary}{path}", headers={**headers, "X-Canary-Shadow": "1"}, content=body
            )
        except httpx.HTTPError:
            pass  # the canary's answer (or its absence) is never anyone's answer; its metrics tell the judge

    def _forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        role = self._pick()
        address = self.canary if role == "canary" else self.production
        sent = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
        if self._copy_now(path):
            self._copies.submit(self._send_copy, method, path, sent, body)
        try:
            response = self._client.request(method, f"http://{address}{path}", headers=sent, content=body)
        except httpx.HTTPError as exc:
            # NGINX would try the other upstream; the double answers 502 without X-Upstream, as NGINX
            # does when nothing is up, so a probe counts it as "other".
            return 502, {}, f"memory router: {role} at {address}: {exc}".encode()
        answer = {name: value for name, value in response.headers.items() if name.lower() not in HOP_BY_HOP}
        answer["X-Upstream"] = role
        return response.status_code, answer, response.content

    def close(self) -> None:
        """Stop serving."""
        self.server.close()
        self._copies.shutdown(wait=False, cancel_futures=True)
        self._client.close()


_ROUTERS: dict[Path, MemoryRouter] = {}
_REGISTRY_LOCK = threading.Lock()


def memory_router(directory: Path) -> MemoryRouter | None:
    """The router of the stack whose NGINX directory is ``directory``, if it runs in this process."""
    with _REGISTRY_LOCK:
        return _ROUTERS.get(Path(directory).resolve())


class MemoryTrafficController:
    """ManagedTrafficController over a ``MemoryRouter`` (started by ``start``, found again by directory)."""

    def __init__(
        self, directory: Path, *, host: str = "127.0.0.1", port: int = 0, production: str, canary: str
    ) -> None:
        """``directory`` names the router (the stack's NGINX directory); ``production``/``canary`` are
        ``host:port``; ``port`` 0 picks a free one at ``start``."""
        self.dir = Path(directory).resolve()
        self.host, self.port = host, port
        self.production, self.canary = production, canary

    @classmethod
    def for_record(cls, record: NginxRecord) -> MemoryTrafficController:
        """The controller of a stack's recorded router."""
        return cls(record.dir, host=record.host, port=record.port, production=record.production, canary=record.canary)

    def _router(self) -> MemoryRouter:
        router = memory_router(self.dir)
        if router is None:
            raise TrafficError(
                f"no in-memory router runs for {self.dir} in this process (it lives only as long "
                "as the process that started it)"
            )
        return router

    # ------------------------------------------------------------------ lifecycle
    def start(self, canary_weight: int = 0, *, timeout: float = 10.0) -> int | None:
        """Serve the split at ``canary_weight``; None (no process of its own)."""
        _check(canary_weight)
        with _REGISTRY_LOCK:
            if self.dir in _ROUTERS:
                raise TrafficError(f"an in-memory router already runs for {self.dir}; stop it first")
            router = MemoryRouter(self.host, self.port, self.production, self.canary, canary_weight)
            _ROUTERS[self.dir] = router
        self.port = router.server.port
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the router. Idempotent."""
        with _REGISTRY_LOCK:
            router = _ROUTERS.pop(self.dir, None)
        if router is not None:
            router.close()

    def is_running(self) -> bool:
        """True while the router serves."""
        return memory_router(self.dir) is not None

    @property
    def pid(self) -> int | None:
        """None: the router runs in this process's threads."""
        return None

    @property
    def start_time(self) -> int | None:
        """None: no process of its own."""
        return None

    # ------------------------------------------------------------------ TrafficController
    @property
    def base_url(self) -> str:
        """The router's address."""
        router = memory_router(self.dir)
        return router.server.url if router is not None else f"http://{self.host}:{self.port}"

    def set_canary_weight(self, percent: int, *, reason: str = "") -> None:
        """Put ``percent`` in force at once (new generation), unless a programmed refusal is pending."""
        _check(percent)
        router = self._router()
        with router._lock:
            state = router.state
            if state.refusals:
                raise TrafficError(
                    f"memory router refused canary weight {percent}%: {state.refusals.pop(0)}; "
                    f"weight {state.canary_weight}% (generation {state.generation}) still in force"
                )
            state.canary_weight, state.configured = percent, None
            state.shadow_share, state.shadow_drop = 0, ()
            state.generation += 1
            state.history.append((percent, reason))

    def set_shadow(self, share: int, *, drop: tuple[str, ...] = (), reason: str = "") -> None:
        """Serve users from production only and copy ``share`` % (1..100) of requests to the canary, except
        the ``drop`` routes; at once (new generation), unless a programmed refusal is pending."""
        if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
            raise TrafficError(f"shadow share {share!r}: must be an integer percentage in 1..100")
        checked = Shadow(share, tuple(drop))  # the same route rules as NGINX's
        router = self._router()
        with router._lock:
            state = router.state
            if state.refusals:
                raise TrafficError(
                    f"memory router refused shadow share {share}%: {state.refusals.pop(0)}; "
                    f"weight {state.canary_weight}% (generation {state.generation}) still in force"
                )
            state.canary_weight, state.configured = 0, None
            state.shadow_share, state.shadow_drop = checked.share, checked.drop
            state.generation += 1
            state.history.append((0, reason or f"shadow {share}%"))

    def shadow_share(self) -> int:
        """The share of requests copied to the canary in force (0: none)."""
        return self._router().state.shadow_share

    @property
    def shadow_copies(self) -> int:
        """How many copies the router has sent to the canary so far."""
        return self._router().state.shadow_copies

    def canary_weight(self) -> int:
        """The canary percentage in force."""
        return self.weights_in_force().canary_weight

    def weights_in_force(self) -> InForce:
        """The split in force; TrafficError when the router does not run."""
        state = self._router().state
        return InForce(
            generation=str(state.generation),
            production_weight=100 - state.canary_weight,
            canary_weight=state.canary_weight,
            production=self.production,
            canary=self.canary,
            shadow_share=state.shadow_share,
        )

    def configured_canary_weight(self) -> int | None:
        """The programmed "configuration file" weight (``set_configured``), else the weight in force."""
        state = self._router().state
        return state.canary_weight if state.configured is None else state.configured

    def config_text(self) -> str | None:
        """The split as one line of text."""
        in_force = self.weights_in_force()
        return (
            f"memory router: production {in_force.production} weight {in_force.production_weight}, "
            f"canary {in_force.canary} weight {in_force.canary_weight}, shadow {in_force.shadow_share}%, "
            f"generation {in_force.generation}\n"
        )

    # ------------------------------------------------------------------ programming (tests)
    def refuse(self, times: int = 1, reason: str = "refused by the test") -> None:
        """The next ``times`` weight changes raise TrafficError and leave the split as it is."""
        self._router().state.refusals.extend([reason] * times)

    def set_configured(self, weight: int) -> None:
        """Make the configuration hold ``weight`` while the weight in force stays (a stale file)."""
        _check(weight)
        self._router().state.configured = weight

    @property
    def history(self) -> list[tuple[int, str]]:
        """Every change put in force: (weight, reason), oldest first."""
        return list(self._router().state.history)


def _under(path: str, route: str) -> bool:
    """Whether ``path`` (with its query string) is ``route`` or below it, as NGINX's drop map matches."""
    path = path.split("?", 1)[0]
    base = route.rstrip("/")
    return path == base or path.startswith(base + "/") or (base == "" and path.startswith("/"))


def _check(percent: object) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise TrafficError(f"canary weight {percent!r}: must be an integer in 0..100")

"""Service settings: command-line flags win over environment variables, which win over defaults.

Every parse error is a SettingsError naming the value and its source, raised before the port is bound.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fragrance_ai.bodylimit import DEFAULT_MAX_BODY_BYTES
from fragrance_ai.errors import SettingsError
from fragrance_ai.faults import Faults, parse_faults

DEFAULT_MODELS = ("gpt-3.5-turbo", "claude-3-haiku", "gemini-pro")
DEFAULT_VERSION = "dev"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
WORKER_ROLES = ("llm", "rl")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")


class Secret:
    """A string that never shows itself in repr/str (API keys end up in no log or error)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (an Authorization header)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start, resolved once."""

    host: str = "127.0.0.1"
    port: int = 8001
    version: str = DEFAULT_VERSION
    log_file: Path | None = None
    seed: int = 0
    models: tuple[str, ...] = DEFAULT_MODELS
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    use_ensemble: bool = True
    latency_scale: float = 1.0
    ppo_batch_size: int = 8
    store_size: int = 10_000
    faults: Faults = field(default_factory=Faults)
    openai_base_url: str = ""
    openai_api_key: Secret = field(default_factory=lambda: Secret(""))
    llm_timeout_s: float = 10.0
    llm_retries: int = 2
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    redis_url: str = ""
    workers: tuple[str, ...] = ()
    queue_key: str = ""

    @property
    def queue(self) -> str:
        """The key of this release's queues: FRAGRANCE_QUEUE_KEY, else the version (canary and production
        releases then never share a queue)."""
        return self.queue_key or self.version

    @property
    def active_models(self) -> tuple[str, ...]:
        """The providers in use: all of them, or only the first with USE_LLM_ENSEMBLE=false."""
        return self.models if self.use_ensemble else self.models[:1]

    @property
    def active_weights(self) -> tuple[float, ...]:
        """Voting weights of the active providers."""
        return self.weights[: len(self.active_models)]


# --------------------------------------------------------------------------- parsers
def parse_version(raw: str, source: str) -> str:
    """A release label: letters, digits and ``._+-`` (it ends up in headers and metric labels)."""
    value = raw.strip()
    if not _VERSION_RE.match(value):
        raise SettingsError(f"{source}: {raw!r} is not a version label (letters, digits, '.', '_', '+', '-')")
    return value


def parse_port(raw: str, source: str) -> int:
    """A TCP port in 1..65535."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise SettingsError(f"{source}: {raw!r} is not a port in 1..65535")
    return int(text)


def parse_int(raw: str, source: str, *, minimum: int, maximum: int) -> int:
    """An integer within bounds."""
    text = raw.strip()
    if not re.fullmatch(r"-?\d+", text) or not minimum <= int(text) <= maximum:
        raise SettingsError(f"{source}: {raw!r} is not an integer in {minimum}..{maximum}")
    return int(text)


def parse_float(raw: str, source: str, *, minimum: float, strict: bool = False) -> float:
    """A finite float >= minimum (> minimum when strict)."""
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        rule = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise SettingsError(f"{source}: {raw!r} is not a number {rule}")
    return value


def parse_bool(raw: str, source: str) -> bool:
    """true/false, 1/0, yes/no, on/off."""
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{source}: {raw!r} is not a boolean (true/false)")


def parse_models(raw: str, source: str) -> tuple[str, ...]:
    """Comma-separated provider names, at least one, no duplicates."""
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise SettingsError(f"{source}: {raw!r} names no model")
    for name in names:
        if not _MODEL_RE.match(name):
            raise SettingsError(f"{source}: model name {name!r} has characters outside [A-Za-z0-9._:/@+-]")
    if len(set(names)) != len(names):
        raise SettingsError(f"{source}: {raw!r} names a model twice")
    return names


def parse_weights(raw: str, source: str, count: int) -> tuple[float, ...]:
    """Comma-separated positive voting weights, one per model."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != count:
        raise SettingsError(f"{source}: {raw!r} has {len(parts)} weights for {count} models")
    return tuple(parse_float(part, f"{source} weight {part!r}", minimum=0.0, strict=True) for part in parts)


def parse_url(raw: str, source: str) -> str:
    """An http(s) base URL."""
    text = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", text):
        raise SettingsError(f"{source}: {raw!r} is not an http(s) URL")
    return text


def parse_redis_url(raw: str, source: str) -> str:
    """A redis:// (or unix://) URL of the broker."""
    text = raw.strip()
    if not re.match(r"^(rediss?://[^\s/]+|unix:///\S+)", text):
        raise SettingsError(f"{source}: {raw!r} is not a redis:// URL")
    return text


def parse_workers(raw: str, source: str) -> tuple[str, ...]:
    """Comma-separated worker roles (llm, rl) whose work the API queues instead of doing it in-process."""
    roles = tuple(part.strip() for part in raw.split(",") if part.strip())
    for role in roles:
        if role not in WORKER_ROLES:
            raise SettingsError(f"{source}: unknown worker role {role!r} (roles: {', '.join(WORKER_ROLES)})")
    if len(set(roles)) != len(roles):
        raise SettingsError(f"{source}: {raw!r} names a role twice")
    return roles


# --------------------------------------------------------------------------- resolution
def _pick(cli: str | None, flag: str, env: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    if cli is not None:
        return cli, flag
    if environ.get(env, "").strip() != "":
        return environ[env], env
    return None


def resolve_settings(
    *,
    host: str | None = None,
    port: str | None = None,
    version: str | None = None,
    log_file: str | None = None,
    seed: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from CLI values (None = not given) and the environment."""
    env = os.environ if environ is None else environ
    base = Settings()
    picked = _pick(version, "--version", "APP_VERSION", env)
    resolved_version = parse_version(*picked) if picked else base.version
    picked = _pick(seed, "--seed", "FRAGRANCE_SEED", env)
    resolved_seed = parse_int(*picked, minimum=0, maximum=2**32 - 1) if picked else base.seed
    resolved_host = (host if host is not None else base.host).strip()
    if not resolved_host:
        raise SettingsError("--host: must not be empty")
    resolved_port = parse_port(port, "--port") if port is not None else base.port

    models = (
        parse_models(env["LLM_ENSEMBLE_MODELS"], "LLM_ENSEMBLE_MODELS")
        if env.get("LLM_ENSEMBLE_MODELS", "").strip()
        else base.models
    )
    weights = (
        parse_weights(env["LLM_ENSEMBLE_WEIGHTS"], "LLM_ENSEMBLE_WEIGHTS", len(models))
        if env.get("LLM_ENSEMBLE_WEIGHTS", "").strip()
        else (1.0,) * len(models)
    )

    def env_value(name: str) -> str | None:
        value = env.get(name, "")
        return value if value.strip() else None

    scale = env_value("FRAGRANCE_LATENCY_SCALE")
    batch = env_value("FRAGRANCE_PPO_BATCH_SIZE")
    store = env_value("FRAGRANCE_STORE_SIZE")
    use = env_value("USE_LLM_ENSEMBLE")
    timeout = env_value("FRAGRANCE_LLM_TIMEOUT_S")
    retries = env_value("FRAGRANCE_LLM_RETRIES")
    body_limit = env_value("FRAGRANCE_MAX_BODY_BYTES")
    base_url = env_value("OPENAI_BASE_URL")
    redis = env_value("FRAGRANCE_REDIS_URL")
    workers = parse_workers(env_value("FRAGRANCE_WORKERS") or "", "FRAGRANCE_WORKERS")
    if workers and not redis:
        raise SettingsError(
            f"FRAGRANCE_WORKERS: {','.join(workers)!r} needs a broker: set FRAGRANCE_REDIS_URL"
        )
    queue_raw = env_value("FRAGRANCE_QUEUE_KEY")
    return Settings(
        host=resolved_host,
        port=resolved_port,
        version=resolved_version,
        log_file=Path(log_file) if log_file else None,
        seed=resolved_seed,
        models=models,
        weights=weights,
        use_ensemble=parse_bool(use, "USE_LLM_ENSEMBLE") if use else True,
        latency_scale=parse_float(scale, "FRAGRANCE_LATENCY_SCALE", minimum=0.0) if scale else 1.0,
        ppo_batch_size=parse_int(batch, "FRAGRANCE_PPO_BATCH_SIZE", minimum=1, maximum=4096) if batch else 8,
        store_size=parse_int(store, "FRAGRANCE_STORE_SIZE", minimum=1, maximum=10_000_000)
        if store
        else 10_000,
        faults=parse_faults(env.get("FRAGRANCE_FAULTS")),
        openai_base_url=parse_url(base_url, "OPENAI_BASE_URL") if base_url else "",
        openai_api_key=Secret(env.get("OPENAI_API_KEY", "").strip()),
        llm_timeout_s=parse_float(timeout, "FRAGRANCE_LLM_TIMEOUT_S", minimum=0.0, strict=True)
        if timeout
        else 10.0,
        llm_retries=parse_int(retries, "FRAGRANCE_LLM_RETRIES", minimum=0, maximum=10) if retries else 2,
        max_body_bytes=parse_int(body_limit, "FRAGRANCE_MAX_BODY_BYTES", minimum=1024, maximum=2**30)
        if body_limit
        else DEFAULT_MAX_BODY_BYTES,
        redis_url=parse_redis_url(redis, "FRAGRANCE_REDIS_URL") if redis else "",
        workers=workers,
        queue_key=parse_version(queue_raw, "FRAGRANCE_QUEUE_KEY") if queue_raw else "",
    )

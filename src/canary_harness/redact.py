"""Keeping the operator's environment values (``--canary-env`` / ``--production-env``) out of every output.

Values are registered when they are parsed (``config.parse_env_pairs``); ``redact`` replaces every
registered value in a text by ``***``, and every ``CanaryError`` message goes through it, so an error that
quotes a command line, a state entry or a log line cannot repeat a secret. An environment is shown as
``KEY=***``; with ``debug=True`` values are shown except for names that look secret (KEY, TOKEN,
SECRET, PASSWORD, ...), which are masked in every mode.

Short values are registered only when their name looks secret: masking every ``1`` or ``0.05`` in
messages would make them unreadable and protects nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

MASK = "***"
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|PWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|CERT|SIGNATURE|DSN",
    re.IGNORECASE,
)
# Values at least this long are masked whatever their name; secret-named ones from MIN_SECRET_LEN on.
MIN_PLAIN_LEN = 6
MIN_SECRET_LEN = 3

_lock = threading.Lock()
_values: set[str] = set()


def is_secret_name(name: str) -> bool:
    """True if an environment variable name looks like it holds a credential."""
    return bool(SECRET_NAME.search(name))


def register(env: Mapping[str, str]) -> None:
    """Remember the values of ``env`` so that ``redact`` masks them from now on (this process)."""
    with _lock:
        for name, value in env.items():
            limit = MIN_SECRET_LEN if is_secret_name(name) else MIN_PLAIN_LEN
            if len(value) >= limit:
                _values.add(value)


def redact(text: str) -> str:
    """``text`` with every registered value replaced by ``***`` (longest first, so overlaps stay masked)."""
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def show_env(env: Mapping[str, str], *, debug: bool = False) -> str:
    """``K=*** K2=***``; with ``debug`` non-secret names show their value (redacted if registered)."""
    return " ".join(
        f"{name}={redact(value) if debug and not is_secret_name(name) else MASK}" for name, value in env.items()
    )

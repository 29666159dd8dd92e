"""The services' extra environment, kept out of the state file.

``state.json`` records, per service, only a keyed hash of the environment it was started with
(HMAC-SHA256 with a random key created once per run directory, ``env.key``, 0600): enough to decide
whether a running canary can be reused by the next stage, useless to guess a value from (unlike a plain
hash of a short token). The values themselves are needed once more, when a promotion restarts production
with the environment the canary was verified with: they are kept in ``service-env.json`` (0600, in the
0700 run directory), which nothing ever prints, and removed by ``canary stack down``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from canary_harness.errors import StackError
from canary_harness.private import PRIVATE_FILE_MODE, private_dir, write_private
from canary_harness.redact import register

KEY_FILE = "env.key"
VALUES_FILE = "service-env.json"


class EnvStore:
    """Keyed hashes and private storage of the services' environment in one run directory."""

    def __init__(self, run_dir: Path) -> None:
        """Bind to ``run_dir`` (nothing is created until a digest or a value is asked for)."""
        self.run_dir = Path(run_dir)

    @property
    def values_file(self) -> Path:
        """Where the environment values are kept."""
        return self.run_dir / VALUES_FILE

    def _key(self) -> bytes:
        path = self.run_dir / KEY_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            private_dir(self.run_dir)
            try:
                # O_EXCL: two processes creating the key at once agree on the first one written.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            except FileExistsError:
                return path.read_bytes()
            key = secrets.token_bytes(32)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
        if len(key) < 16:
            raise StackError(f"{path}: environment hash key is truncated; remove it and restart the stack")
        return key

    def digest(self, env: Mapping[str, str]) -> str:
        """HMAC-SHA256 (hex) of the environment, independent of the order of its keys."""
        canonical = json.dumps(dict(env), sort_keys=True, separators=(",", ":")).encode("utf-8")
        return "hmac-sha256:" + hmac.new(self._key(), canonical, hashlib.sha256).hexdigest()

    def _all(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.values_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Never quote the content: it is the secret.
            raise StackError(f"{self.values_file}: unreadable ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise StackError(f"{self.values_file}: not a JSON object")
        return {
            str(role): {str(k): str(v) for k, v in dict(env).items()}
            for role, env in data.items()
            if isinstance(env, dict)
        }

    def save(self, role: str, env: Mapping[str, str]) -> None:
        """Keep ``env`` as the environment of ``role`` (0600 file, fsynced)."""
        data = self._all()
        data[role] = dict(env)
        write_private(self.values_file, json.dumps(data, sort_keys=True) + "\n")

    def load(self, role: str) -> dict[str, str]:
        """The environment ``role`` was started with ({} if none recorded); registered for redaction."""
        env = self._all().get(role, {})
        register(env)
        return env

    def forget(self) -> None:
        """Remove the stored values (the stack is down)."""
        self.values_file.unlink(missing_ok=True)

"""Poll a condition with a deadline instead of sleeping and hoping.

``wait_until`` is the one waiting primitive of the harness and its tests: it calls a predicate until it
returns something truthy, and fails loudly (naming what it waited for and the last error seen) when the
deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    describe: str = "condition",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value, and return that value.

    Exceptions of the types in ``ignore`` count as "not yet" (e.g. connection refused while a server
    starts); the last one is named in the error. Raises the built-in ``TimeoutError`` once ``timeout``
    seconds have passed; callers translate it into their own error type.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except ignore as exc:
            last_error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {describe}{detail}")
        # Never sleep past the deadline, so a short timeout is honoured closely.
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))

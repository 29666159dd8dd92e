"""Request pacing and limits shared by all simulated users of one load process.

Constant-rate mode uses one shared scheduler per process instead of per-user pacing: a user reserves
the next free send slot (slots are 1/rate apart) and waits for it, so the total rate holds whatever
the number of users and their latency, as long as enough users are free to take the slots. A slot
is never in the past, so a process that fell behind does not burst to catch up; the achieved rate is
reported instead. Locks are plain ``threading`` locks: under locust they are gevent locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Evenly spaced send slots at ``rate`` per second (a virtual-scheduling token bucket of depth 1)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError(f"rate {rate!r} must be positive")
        self._interval = 1.0 / rate
        self._clock = clock
        self._next = -float("inf")
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The target in requests per second."""
        return 1.0 / self._interval

    def reserve(self) -> float:
        """Take the next slot; returns how many seconds to wait before sending (0 when due now)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
            return slot - now


class RequestBudget:
    """At most ``limit`` requests (None: no cap); ``take`` is asked before every send."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"limit {limit!r} must be >= 0")
        self.limit = limit
        self._taken = 0
        self._lock = threading.Lock()

    @property
    def taken(self) -> int:
        """Requests allowed so far."""
        return self._taken

    @property
    def exhausted(self) -> bool:
        """True once every allowed request was handed out."""
        return self.limit is not None and self._taken >= self.limit

    def take(self) -> bool:
        """Reserve one request; False when the cap is reached."""
        with self._lock:
            if self.limit is not None and self._taken >= self.limit:
                return False
            self._taken += 1
            return True


def split_count(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split over ``parts`` as evenly as integers allow (parts sum to total).

    An index beyond ``parts`` (a worker that joined late) gets the smaller share.
    """
    if parts < 1:
        raise ValueError(f"parts {parts!r} must be >= 1")
    base, extra = divmod(total, parts)
    return base + (1 if 0 <= index < extra else 0)

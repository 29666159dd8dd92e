"""wait_until: returns the first truthy value, ignores listed errors, fails naming what it waited for."""

from __future__ import annotations

import time

import pytest

from canary_harness.waiting import wait_until


def test_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", "ready", "later"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0.001) == "ready"


def test_listed_errors_count_as_not_yet() -> None:
    attempts: list[int] = []

    def flaky() -> bool:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("refused")
        return True

    assert wait_until(flaky, timeout=5, interval=0.001, ignore=(ConnectionError,)) is True
    assert len(attempts) == 3


def test_other_errors_propagate() -> None:
    def broken() -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        wait_until(broken, timeout=5, ignore=(ConnectionError,))


def test_timeout_names_the_condition_and_last_error() -> None:
    def refused() -> bool:
        raise ConnectionError("refused")

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"port 1 to open.*ConnectionError: refused"):
        wait_until(refused, timeout=0.2, interval=0.05, describe="port 1 to open", ignore=(ConnectionError,))
    assert 0.2 <= time.monotonic() - started < 2.0


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="-1"):
        wait_until(lambda: True, timeout=-1)

"""``raise_collected``: what a teardown that went on past its failures raises at the end."""

from __future__ import annotations

import pytest

from canary_harness.errors import BackendError, StackError, TrafficError, raise_collected


def test_nothing_failed_raises_nothing() -> None:
    raise_collected([])


def test_one_failure_is_raised_as_it_is_even_when_two_steps_hit_it() -> None:
    engine = BackendError("Docker engine not reachable")
    with pytest.raises(BackendError) as raised:
        raise_collected([engine, BackendError("Docker engine not reachable")])
    assert raised.value is engine


def test_different_failures_are_named_together() -> None:
    first = TrafficError("nginx: gone")
    with pytest.raises(StackError, match=r"^nginx: gone; worker-rl-1: engine gone$") as raised:
        raise_collected([first, BackendError("worker-rl-1: engine gone")])
    assert raised.value.__cause__ is first

"""Constant-rate slots and the request cap, driven by a fake clock."""

from __future__ import annotations

import pytest

from canary_harness.loadgen.pacing import RateLimiter, RequestBudget, split_count


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_slots_are_evenly_spaced_at_the_target_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock)
    assert [round(limiter.reserve(), 9) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    assert limiter.rate == pytest.approx(10.0)


def test_slots_taken_over_time_give_the_target_count() -> None:
    clock = FakeClock()
    limiter = RateLimiter(50.0, clock)
    sent = 0
    # Users poll every millisecond for 10 s and send whenever their reserved slot is due.
    pending: list[float] = []
    for _ in range(10_000):
        while len(pending) < 5:
            pending.append(clock.now + limiter.reserve())
        due = [slot for slot in pending if slot <= clock.now]
        sent += len(due)
        pending = [slot for slot in pending if slot > clock.now]
        clock.now += 0.001
    assert 499 <= sent <= 501


def test_a_late_caller_does_not_get_a_burst_to_catch_up() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock)
    limiter.reserve()
    clock.now += 5.0  # nobody asked for 5 s: those 50 slots are gone, not owed
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.1)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0.0)


def test_budget_stops_at_its_limit() -> None:
    budget = RequestBudget(3)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert budget.exhausted and budget.taken == 3


def test_budget_without_limit_never_runs_out() -> None:
    budget = RequestBudget(None)
    assert all(budget.take() for _ in range(1000)) and not budget.exhausted


@pytest.mark.parametrize(("total", "parts"), [(600, 2), (601, 2), (10, 3), (2, 5), (0, 4)])
def test_split_count_shares_add_up(total: int, parts: int) -> None:
    shares = [split_count(total, parts, index) for index in range(parts)]
    assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_split_count_gives_a_late_worker_the_smaller_share() -> None:
    assert split_count(10, 3, 7) == 3
    with pytest.raises(ValueError):
        split_count(10, 0, 0)

"""How many samples a mixture SPRT needs: exact dynamic programming over the event count.

The rejection region of a Bernoulli mixture is monotone in the event count x (upward for the FAIL
form, downward for the PASS form), so at each sample size n it is "x ≥ edge(n)" or "x ≤ edge(n)",
and the edge only moves one way as n grows. Propagating the distribution of x over the paths that
have not crossed yet gives the exact probability of having crossed by n, hence n50 / n90 (the first
n where it reaches 50 % / 90 %).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from canary_harness.judge.eprocess import BernoulliMixture, ExcessTest, crossing_bound

# The planner never searches beyond this many samples for one test.
DEFAULT_LIMIT = 200_000
# Distinct (test, rate, budget) questions kept answered: the planner asks the same ones for every stage plan,
# every re-plan and every `canary plan`, and each answer is a dynamic programme of up to DEFAULT_LIMIT steps.
_CACHED_ANSWERS = 1024


@dataclass(frozen=True)
class SampleSize:
    """Samples a test needs at a given true rate: n50 / n90 (None: not within ``limit``).

    ``n_min`` is the fewest samples with which the test can cross at all (the most extreme data),
    None if even ``limit`` samples cannot.
    """

    n50: int | None
    n90: int | None
    n_min: int | None
    limit: int


class _Edge:
    """Walks the rejection edge edge(n) for n = 1, 2, ... (it is monotone in n).

    FAIL form: the smallest crossing x (n + 1 when none); it never decreases because one more
    non-event only lowers E. PASS form: the largest crossing x (−1 when none); it never decreases
    because one more non-event only raises E.
    """

    def __init__(self, test: BernoulliMixture, budget: float) -> None:
        self.test = test
        self.bound = crossing_bound(budget)
        self.edge = 0 if test.upper else -1

    def crosses(self, events: int, trials: int) -> bool:
        return 0 <= events <= trials and self.test.log_e_scalar(events, trials) >= self.bound

    def advance(self, trials: int) -> int:
        if self.test.upper:
            while self.edge <= trials and not self.crosses(self.edge, trials):
                self.edge += 1
            self.edge = min(self.edge, trials + 1)
        else:
            while self.crosses(self.edge + 1, trials):
                self.edge += 1
        return self.edge


def crossing_edge(test: BernoulliMixture, budget: float, trials: int) -> int:
    """edge(n) at one sample size (binary search; see :class:`_Edge` for the convention)."""
    edge = _Edge(test, budget)
    if test.upper:
        low, high = 0, trials + 1
        while low < high:
            middle = (low + high) // 2
            if edge.crosses(middle, trials):
                high = middle
            else:
                low = middle + 1
        return high
    low, high = -1, trials
    while low < high:
        middle = (low + high + 1) // 2
        if edge.crosses(middle, trials):
            low = middle
        else:
            high = middle - 1
    return low


@functools.lru_cache(maxsize=_CACHED_ANSWERS)
def sample_sizes(test: BernoulliMixture, true_rate: float, budget: float, limit: int = DEFAULT_LIMIT) -> SampleSize:
    """n50 / n90 of ``test`` at level ``budget`` when events occur at ``true_rate`` per sample."""
    if not 0 <= true_rate <= 1:
        raise ValueError(f"true rate {true_rate!r} must lie in [0, 1]")
    edge = _Edge(test, budget)
    dist = np.ones(1)  # dist[i] = P(x = lo + i and not crossed yet)
    lo = 0
    crossed = 0.0
    n50: int | None = None
    n_min: int | None = None
    spread = math.sqrt(max(true_rate * (1 - true_rate), 1e-12))
    for n in range(1, limit + 1):
        grown = np.empty(dist.size + 1)
        grown[:-1] = dist * (1 - true_rate)
        grown[-1] = 0.0
        grown[1:] += dist * true_rate
        boundary = edge.advance(n)
        if test.upper:
            if n_min is None and boundary <= n:
                n_min = n
            keep = max(0, min(grown.size, boundary - lo))
            crossed += float(grown[keep:].sum())
            dist = grown[:keep]
        else:
            if n_min is None and boundary >= 0:
                n_min = n
            cut = max(0, min(grown.size, boundary - lo + 1))
            crossed += float(grown[:cut].sum())
            dist = grown[cut:]
            lo += cut
            # Mass far above the mean is negligible; bounding the window keeps each step cheap.
            ceiling = int(n * true_rate + 12 * spread * math.sqrt(n) + 30)
            if lo + dist.size > ceiling + 1:
                dist = dist[: max(0, ceiling + 1 - lo)]
        if n50 is None and crossed >= 0.5:
            n50 = n
        if crossed >= 0.9:
            return SampleSize(n50=n50, n90=n, n_min=n_min, limit=limit)
        if dist.size == 0 and n_min is not None:
            break
    return SampleSize(n50=n50, n90=None, n_min=n_min, limit=limit)


def detectable_rate(test: BernoulliMixture, budget: float, trials: int, power: float = 0.9) -> float | None:
    """The smallest true rate a FAIL-form test catches with ≥ ``power`` within ``trials`` samples.

    Uses P(crossed by n) ≥ P(X_n ≥ edge(n)), so the figure is on the safe side: the test catches
    this rate (and any larger one) at least that often. None when even rate 1 would not cross.
    """
    if not test.upper:
        raise ValueError("detectable_rate applies to FAIL-form tests (alternatives above p0)")
    if trials < 1:
        return None
    needed = crossing_edge(test, budget, trials)
    if needed > trials:
        return None
    counts = np.arange(needed, trials + 1, dtype=np.float64)
    log_choose = _log_factorials(trials)
    log_binom = log_choose[trials] - log_choose[needed:] - log_choose[trials - needed :: -1]
    low, high = 0.0, 1.0
    for _ in range(50):
        middle = (low + high) / 2
        log_pmf = log_binom + counts * math.log(middle) + (trials - counts) * math.log1p(-middle)
        top = float(np.max(log_pmf))
        tail = math.exp(top) * float(np.sum(np.exp(log_pmf - top)))
        if tail >= power:
            high = middle
        else:
            low = middle
    return high


def _log_factorials(n: int) -> np.ndarray:
    """log k! for k = 0..n."""
    return np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))


def _clipped_moments(effect: float, cap: float) -> tuple[float, float]:
    """Mean and variance of clip(Z + effect, −cap, cap) for a standard normal Z (numeric quadrature)."""
    z = np.linspace(-9.0, 9.0, 3601)
    density = np.exp(-z * z / 2)
    density /= density.sum()
    clipped = np.clip(z + effect, -cap, cap)
    mean = float((clipped * density).sum())
    return mean, float(((clipped - mean) ** 2 * density).sum())


@functools.lru_cache(maxsize=_CACHED_ANSWERS)
def magnitude_sample_sizes(test: ExcessTest, effect: float, budget: float, limit: int = DEFAULT_LIMIT) -> SampleSize:
    """n50 / n90 (pairs) of the magnitude loss test when each pair's standardised excess is N(effect, 1).

    A normal approximation of Σζ at each n against the test's crossing edge (log E grows with Σζ),
    with the spread taken as known: the real test standardises by an upper confidence bound of an
    estimated spread, so early pairs count a little less and the figures are slightly optimistic.
    """
    mean, variance = _clipped_moments(effect, test.cap)
    bound = crossing_bound(budget)
    n = np.arange(1, min(limit, 20_000) + 1, dtype=np.float64)
    reachable = test.log_e(test.cap * n, n) >= bound
    if not reachable.any():
        return SampleSize(n50=None, n90=None, n_min=None, limit=limit)
    # The crossing edge of Σζ at every n at once (log E increases with Σζ): vectorised bisection.
    low, high = -test.cap * n, test.cap * n
    for _ in range(50):
        middle = (low + high) / 2
        above = test.log_e(middle, n) >= bound
        high, low = np.where(above, middle, high), np.where(above, low, middle)
    normal = NormalDist()
    z = (high - n * mean) / np.sqrt(np.maximum(n * variance, 1e-12))
    crossed = np.where(reachable, 1 - np.vectorize(normal.cdf)(z), 0.0)

    def first(level: float) -> int | None:
        hits = np.flatnonzero(crossed >= level)
        return int(hits[0]) + 1 if hits.size else None

    return SampleSize(n50=first(0.5), n90=first(0.9), n_min=int(np.flatnonzero(reachable)[0]) + 1, limit=limit)

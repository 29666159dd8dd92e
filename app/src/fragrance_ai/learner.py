"""The online learner: proposes actions with the PPO policy, buffers feedback, updates when full."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np

from fragrance_ai.dna import ACTIONS, FEATURE_DIM
from fragrance_ai.ppo import LinearPolicy, PPOConfig, Transition, UpdateStats, ppo_update


def rating_reward(rating: int) -> float:
    """A 1..5 star rating as a reward in [-1, 1]."""
    return (rating - 3) / 2.0


class Learner:
    """PPO over the DNA mutation actions with a batch of ``batch_size`` feedbacks per update.

    Not thread-safe: the service calls it from its single event-loop thread.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        seed: int,
        loss_factor: float = 1.0,
        loss_nan: bool = False,
        config: PPOConfig | None = None,
        value_window: int | None = None,
    ) -> None:
        self.batch_size = batch_size
        # The value baseline sees the last few batches (at least 32 transitions): see ppo.py.
        self.recent: deque[Transition] = deque(maxlen=value_window or max(4 * batch_size, 32))
        self.loss_factor = loss_factor
        self.loss_nan = loss_nan
        self.config = config or PPOConfig()
        self.rng = np.random.default_rng(seed)
        self.policy = LinearPolicy(len(ACTIONS), FEATURE_DIM, self.rng)
        self.buffer: list[Transition] = []
        self.updates = 0

    def propose(self, x: np.ndarray, count: int) -> list[tuple[int, float]]:
        """``count`` independently sampled (action, log-prob) pairs for the features ``x``."""
        return [self.policy.act(x, self.rng) for _ in range(count)]

    def record(self, x: np.ndarray, action: int, logp: float, reward: float) -> UpdateStats | None:
        """Buffer one transition; run a PPO update and return its statistics when the batch is full."""
        transition = Transition(features=x, action=action, logp=logp, reward=reward)
        self.buffer.append(transition)
        self.recent.append(transition)
        if len(self.buffer) < self.batch_size:
            return None
        batch, self.buffer = self.buffer, []
        stats = ppo_update(self.policy, batch, self.config, value_batch=list(self.recent))
        self.updates += 1
        if self.loss_factor != 1.0:
            # The loss_factor fault: a release whose training diverges reports a larger loss.
            stats = replace(stats, loss=stats.loss * self.loss_factor)
        if self.loss_nan:
            # The loss_nan fault: a diverged model reports NaN (to be FAILed, not averaged away).
            stats = replace(stats, loss=float("nan"))
        return stats

"""Unit tests of the PPO learner on toy problems: gradients, clipping, learning, loss stability."""

from __future__ import annotations

import numpy as np
import pytest

from fragrance_ai import MODES
from fragrance_ai.dna import dna_from_vote, features
from fragrance_ai.learner import Learner, rating_reward
from fragrance_ai.ppo import LinearPolicy, PPOConfig, Transition, ppo_update, surrogate
from fragrance_ai.providers.simulated import SimulatedProvider
from fragrance_ai.vote import weighted_vote

N_ACTIONS, DIM = 4, 3
BEST = 2


def toy_batch(policy: LinearPolicy, rng: np.random.Generator, size: int) -> list[Transition]:
    """A contextual bandit: action BEST pays +1 (plus noise), every other action -1."""
    batch = []
    for _ in range(size):
        x = np.append(rng.normal(0.0, 1.0, DIM - 1), 1.0)
        action, logp = policy.act(x, rng)
        reward = (1.0 if action == BEST else -1.0) + rng.normal(0.0, 0.1)
        batch.append(Transition(x, action, logp, reward))
    return batch


def test_surrogate_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    policy = LinearPolicy(N_ACTIONS, DIM, rng, init_scale=0.5)
    x = rng.normal(size=(16, DIM))
    actions = rng.integers(N_ACTIONS, size=16)
    # Old log-probs a little off the current ones, so that some ratios sit outside [0.8, 1.2].
    old = policy.log_probs(x)[np.arange(16), actions] + rng.normal(0.0, 0.2, 16)
    adv = rng.normal(size=16)
    loss, grad, _ = surrogate(policy, x, actions, old, adv, 0.2)
    numeric = np.zeros_like(grad)
    h = 1e-6
    for index in np.ndindex(*policy.theta.shape):
        policy.theta[index] += h
        up = surrogate(policy, x, actions, old, adv, 0.2)[0]
        policy.theta[index] -= 2 * h
        down = surrogate(policy, x, actions, old, adv, 0.2)[0]
        policy.theta[index] += h
        numeric[index] = (up - down) / (2 * h)
    assert np.allclose(grad, numeric, atol=1e-6), (grad, numeric)
    assert loss == pytest.approx(surrogate(policy, x, actions, old, adv, 0.2)[0])


def test_first_epoch_on_policy_has_unit_ratios_no_clipping_and_zero_surrogate() -> None:
    rng = np.random.default_rng(1)
    policy = LinearPolicy(N_ACTIONS, DIM, rng)
    stats = ppo_update(policy, toy_batch(policy, rng, 32), PPOConfig(epochs=1))
    assert stats.clip_frac == 0.0
    # Ratios are 1 and advantages normalised to mean 0: the surrogate starts at exactly 0.
    assert abs(stats.policy_loss) < 1e-9
    assert stats.loss == pytest.approx(stats.value_loss) and stats.loss >= 0.0


def test_policy_learns_the_best_action_of_a_toy_bandit() -> None:
    rng = np.random.default_rng(2)
    policy = LinearPolicy(N_ACTIONS, DIM, rng)
    probe = np.array([[0.0, 0.0, 1.0]])
    before = float(np.exp(policy.log_probs(probe))[0, BEST])
    rewards = []
    for _ in range(60):
        stats = ppo_update(policy, toy_batch(policy, rng, 16), PPOConfig())
        rewards.append(stats.reward)
        assert stats.loss >= 0.0 and 0.0 <= stats.clip_frac <= 1.0 and stats.entropy > 0.0
    after = float(np.exp(policy.log_probs(probe))[0, BEST])
    assert before < 0.35 and after > 0.9, (before, after)
    assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 1.0


def _max_ratio_after_update(clip_eps: float) -> tuple[float, float]:
    rng = np.random.default_rng(3)
    policy = LinearPolicy(N_ACTIONS, DIM, rng)
    batch = toy_batch(policy, rng, 32)
    config = PPOConfig(clip_eps=clip_eps, policy_lr=0.5, epochs=30, max_grad_norm=10.0, ent_coef=0.0)
    stats = ppo_update(policy, batch, config)
    x = np.stack([t.features for t in batch])
    actions = np.array([t.action for t in batch])
    old = np.array([t.logp for t in batch])
    ratio = np.exp(policy.log_probs(x)[np.arange(len(batch)), actions] - old)
    return float(ratio.max()), stats.clip_frac


def test_clipping_bounds_how_far_one_update_moves_the_policy() -> None:
    ratios = {eps: _max_ratio_after_update(eps) for eps in (0.1, 0.2, 0.3, 1e6)}
    free_ratio, free_frac = ratios[1e6]
    assert free_frac == 0.0 and all(ratios[eps][1] > 0.2 for eps in (0.1, 0.2, 0.3))
    # Thirty aggressive epochs on one batch: without clipping the policy runs away from the one that
    # collected the data; with it the largest ratio stays in the region set by eps (a sample can still
    # drift a little past 1 + eps through parameters it shares with the others).
    assert ratios[0.1][0] < ratios[0.2][0] < ratios[0.3][0] < free_ratio
    assert free_ratio > 3.0 and ratios[0.2][0] < free_ratio / 2, ratios


def test_value_head_learns_the_mean_reward() -> None:
    rng = np.random.default_rng(4)
    policy = LinearPolicy(N_ACTIONS, DIM, rng)
    x = np.array([0.0, 0.0, 1.0])
    losses = []
    for _ in range(50):
        batch = [Transition(x, *policy.act(x, rng), 0.5) for _ in range(8)]
        losses.append(ppo_update(policy, batch, PPOConfig()).value_loss)
    assert policy.value(x[None, :])[0] == pytest.approx(0.5, abs=0.02)
    assert losses[-1] < 0.01 < losses[0]


def _service_like_losses(loss_factor: float, updates: int = 220) -> np.ndarray:
    """Reported losses of the service's learner (real DNA features) under uniformly random ratings."""
    providers = [SimulatedProvider(n, seed=0, latency_scale=0.0, n_providers=3) for n in "abc"]
    briefs = [
        "fresh citrus summer morning",
        "warm vanilla winter evening",
        "rose garden romantic",
        "smoky leather bold",
        "light green tea",
    ]
    states = []
    for brief in briefs:
        for mode in MODES:
            vote = weighted_vote([p.read(brief, mode) for p in providers], [1, 1, 1], mode=mode)
            states.append(features(dna_from_vote(vote), vote["style"], mode, vote["intensity"]))
    rng = np.random.default_rng(5)
    learner = Learner(batch_size=8, seed=5, loss_factor=loss_factor)
    losses: list[float] = []
    while len(losses) < updates:
        x = states[int(rng.integers(len(states)))]
        action, logp = learner.propose(x, 3)[int(rng.integers(3))]
        stats = learner.record(x, action, logp, rating_reward(int(rng.integers(1, 6))))
        if stats is not None:
            losses.append(stats.loss)
    return np.array(losses[20:])  # past the warm-up of the value head


def test_reported_loss_is_stable_when_healthy_and_loss_factor_3_breaks_the_gate() -> None:
    healthy = _service_like_losses(1.0)
    median = float(np.median(healthy))
    assert (healthy >= 0.0).all() and median > 0.0
    # The canary gate compares to 2x production's median: healthy updates must rarely exceed it.
    assert np.mean(healthy > 2.0 * median) < 0.02
    faulty = _service_like_losses(3.0)
    assert np.mean(faulty > 2.0 * median) > 0.95

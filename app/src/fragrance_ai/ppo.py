"""Proximal Policy Optimization (clipped surrogate) for a linear softmax policy, in numpy.

The policy picks one DNA mutation action from a feature vector: pi(a|x) = softmax(theta x); a linear
value function V(x) = w.x is the baseline. Each feedback is a one-step episode, so the return is the
reward and the advantage is reward - V(x), normalised over the batch. Per epoch the policy takes one
gradient step on the clipped surrogate minus an entropy bonus, and the value function one on its MSE.

The reported loss is value MSE + |clipped surrogate loss|, averaged over the epochs: non-negative,
and (because the normalised advantages make the surrogate start at zero) dominated by the value
error. The value head is fit on a short window of recent transitions (the batch and a few before it),
which keeps that error steady from update to update for a healthy service: a release whose loss is
twice the usual is then a real change, not batch noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of the update."""

    clip_eps: float = 0.2
    policy_lr: float = 0.1
    value_lr: float = 0.1
    epochs: int = 4
    ent_coef: float = 0.01
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class Transition:
    """One step: the features the policy saw, the action taken, its log-prob then, and the reward."""

    features: np.ndarray
    action: int
    logp: float
    reward: float


@dataclass(frozen=True)
class UpdateStats:
    """What one PPO update did (means over the epochs, except reward: the batch's mean reward)."""

    loss: float
    policy_loss: float
    value_loss: float
    reward: float
    entropy: float
    clip_frac: float
    approx_kl: float
    steps: int


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _clip_norm(grad: np.ndarray, max_norm: float) -> np.ndarray:
    norm = float(np.linalg.norm(grad))
    return grad * (max_norm / norm) if norm > max_norm else grad


class LinearPolicy:
    """Softmax policy over ``n_actions`` with a linear value head."""

    def __init__(self, n_actions: int, dim: int, rng: np.random.Generator, init_scale: float = 0.01):
        self.theta = rng.normal(0.0, init_scale, (n_actions, dim))
        self.w = np.zeros(dim)

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return int(self.theta.shape[0])

    def log_probs(self, features: np.ndarray) -> np.ndarray:
        """log pi(.|x) for each row of ``features`` (N x D) -> (N x A)."""
        return _log_softmax(features @ self.theta.T)

    def act(self, x: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
        """Sample an action for one feature vector; returns (action, log-prob)."""
        logp = self.log_probs(x[None, :])[0]
        action = int(rng.choice(self.n_actions, p=np.exp(logp)))
        return action, float(logp[action])

    def value(self, features: np.ndarray) -> np.ndarray:
        """V(x) for each row."""
        return features @ self.w


def surrogate(
    policy: LinearPolicy,
    features: np.ndarray,
    actions: np.ndarray,
    old_logp: np.ndarray,
    advantages: np.ndarray,
    clip_eps: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Clipped surrogate loss -mean(min(r A, clip(r, 1-eps, 1+eps) A)), its gradient in theta, and r."""
    n = len(actions)
    logp_all = policy.log_probs(features)
    probs = np.exp(logp_all)
    ratio = np.exp(logp_all[np.arange(n), actions] - old_logp)
    unclipped = ratio * advantages
    clipped = np.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -float(np.mean(np.minimum(unclipped, clipped)))
    # Only samples whose minimum is the unclipped term carry gradient: that is what stops PPO from
    # pushing the ratio further once it left [1-eps, 1+eps] in the advantage's direction.
    active = unclipped <= clipped
    d_logp = -(active * unclipped) / n  # d loss / d log pi(a_i|x_i)
    onehot = np.zeros_like(probs)
    onehot[np.arange(n), actions] = 1.0
    grad_logits = d_logp[:, None] * (onehot - probs)
    return loss, grad_logits.T @ features, ratio


def _entropy_and_grad(policy: LinearPolicy, features: np.ndarray) -> tuple[float, np.ndarray]:
    logp = policy.log_probs(features)
    probs = np.exp(logp)
    per_row = -(probs * logp).sum(axis=1)
    grad_logits = -probs * (logp + per_row[:, None]) / len(features)  # d mean(H) / d logits
    return float(per_row.mean()), grad_logits.T @ features


def ppo_update(
    policy: LinearPolicy,
    batch: Sequence[Transition],
    config: PPOConfig,
    value_batch: Sequence[Transition] | None = None,
) -> UpdateStats:
    """Run ``config.epochs`` PPO epochs on ``batch`` (in place on ``policy``) and report what happened.

    The policy learns from ``batch`` only (on-policy). The value head, a baseline, is fit on
    ``value_batch`` (default: ``batch``), typically the batch plus a few recent ones: more samples
    make the baseline and the reported value loss steadier.
    """
    if not batch:
        raise ValueError("ppo_update needs a non-empty batch")
    value_set = list(value_batch) if value_batch else list(batch)
    v_features = np.stack([t.features for t in value_set])
    v_returns = np.array([t.reward for t in value_set], dtype=np.float64)
    features = np.stack([t.features for t in batch])
    actions = np.array([t.action for t in batch])
    old_logp = np.array([t.logp for t in batch])
    rewards = np.array([t.reward for t in batch], dtype=np.float64)
    advantages = rewards - policy.value(features)
    if len(batch) > 1 and advantages.std() > 1e-8:
        advantages = (advantages - advantages.mean()) / advantages.std()

    pg_losses, v_losses, entropies, clip_fracs, kls = [], [], [], [], []
    for _ in range(config.epochs):
        pg_loss, grad_theta, ratio = surrogate(
            policy, features, actions, old_logp, advantages, config.clip_eps
        )
        entropy, grad_entropy = _entropy_and_grad(policy, features)
        step = _clip_norm(grad_theta - config.ent_coef * grad_entropy, config.max_grad_norm)
        error = policy.value(v_features) - v_returns
        v_grad = _clip_norm(2.0 * v_features.T @ error / len(value_set), config.max_grad_norm)
        pg_losses.append(pg_loss)
        v_losses.append(float(np.mean(error**2)))
        entropies.append(entropy)
        clip_fracs.append(float(np.mean(np.abs(ratio - 1.0) > config.clip_eps)))
        kls.append(float(np.mean(np.log(ratio) * -1.0)))
        policy.theta -= config.policy_lr * step
        policy.w -= config.value_lr * v_grad

    policy_loss = float(np.mean(pg_losses))
    value_loss = float(np.mean(v_losses))
    return UpdateStats(
        loss=value_loss + abs(policy_loss),
        policy_loss=policy_loss,
        value_loss=value_loss,
        reward=float(rewards.mean()),
        entropy=float(np.mean(entropies)),
        clip_frac=float(np.mean(clip_fracs)),
        approx_kl=float(np.mean(kls)),
        steps=config.epochs,
    )

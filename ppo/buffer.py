"""Rollout storage, Generalized Advantage Estimation and minibatch indices.

Storage knows nothing about networks or environments: it is preallocated once (observations in the env's own
dtype, so Atari frames stay uint8) and filled in place, one step of all envs at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) over a [T, N] rollout; returns (advantages, returns = advantages + values).

    Step t's transition ends its episode when it terminated or truncated. A termination is a real end: nothing
    is bootstrapped. A truncation (a time limit) is not a death: its reward is completed with γ·V(final
    observation), given in ``final_values``, which is the value the learner would have bootstrapped from had the
    episode gone on. Either way, no advantage flows back across the episode boundary.
    """
    num_steps = rewards.shape[0]
    rewards = rewards + gamma * final_values * truncated * (1.0 - terminated)
    not_done = 1.0 - torch.maximum(terminated, truncated)
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    following_value = next_value
    for t in reversed(range(num_steps)):
        delta = rewards[t] + gamma * following_value * not_done[t] - values[t]
        last = delta + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
        following_value = values[t]
    return advantages, advantages + values


def minibatch_indices(batch_size: int, num_minibatches: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """A random partition of range(batch_size) into equal minibatches: every sample used exactly once."""
    if batch_size % num_minibatches:
        raise ValueError(f"batch of {batch_size} does not split into {num_minibatches} minibatches")
    permutation = torch.randperm(batch_size, generator=generator).to(device)
    return list(permutation.view(num_minibatches, -1))


@dataclass
class Batch:
    """A rollout flattened to [T·N, ...] for the update."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class RolloutBuffer:
    """Preallocated [num_steps, num_envs] storage for one rollout.

    Tensors the network produces (observations, actions, log-probs, values) live on the training device; the
    env's own outputs (rewards, terminations, truncations) stay in host memory until the rollout is complete,
    so the step loop never copies small arrays to the device.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype,
                 action_shape: tuple[int, ...], action_dtype: torch.dtype, device: torch.device) -> None:
        self.num_steps, self.num_envs, self.device = num_steps, num_envs, device
        shape = (num_steps, num_envs)
        self.obs = torch.zeros(shape + obs_shape, dtype=obs_dtype, device=device)
        self.actions = torch.zeros(shape + action_shape, dtype=action_dtype, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.final_values = torch.zeros(shape, device=device)
        self.rewards = np.zeros(shape, np.float32)
        self.terminated = np.zeros(shape, np.float32)
        self.truncated = np.zeros(shape, np.float32)

    def compute_advantages(self, next_value: torch.Tensor, gamma: float, gae_lambda: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        def to_device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(self.device)

        return compute_gae(to_device(self.rewards), self.values, next_value, to_device(self.terminated),
                           to_device(self.truncated), self.final_values, gamma, gae_lambda)

    def flatten(self, advantages: torch.Tensor, returns: torch.Tensor) -> Batch:
        size = self.num_steps * self.num_envs
        return Batch(
            obs=self.obs.reshape((size,) + self.obs.shape[2:]),
            actions=self.actions.reshape((size,) + self.actions.shape[2:]),
            logprobs=self.logprobs.reshape(size),
            values=self.values.reshape(size),
            advantages=advantages.reshape(size),
            returns=returns.reshape(size),
        )

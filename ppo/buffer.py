"""Rollout storage, Generalized Advantage Estimation and minibatch indices.

Storage knows nothing about networks or environments: it is preallocated once (observations in the env's own
dtype, so Atari frames stay uint8) and filled in place, one step of all envs at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from ppo.normalize import RewardScaler


def compute_gae(
    rewards: np.ndarray | torch.Tensor,
    values: np.ndarray | torch.Tensor,
    next_value: np.ndarray | torch.Tensor,
    terminated: np.ndarray | torch.Tensor,
    truncated: np.ndarray | torch.Tensor,
    final_values: np.ndarray | torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) over a [T, N] rollout; returns (advantages, returns = advantages + values) as CPU tensors.

    Step t's transition ends its episode when it terminated or truncated. A termination is a real end: nothing
    is bootstrapped. A truncation (a time limit) is not a death: its reward is completed with γ·V(final
    observation), given in ``final_values``, which is the value the learner would have bootstrapped from had the
    episode gone on (test_bootstrap.py checks what the loop hands over). Either way, no advantage flows back across
    the episode boundary. The recursion runs in NumPy on the host: T small steps over N envs, where each torch op
    would cost more in dispatch than in arithmetic.
    """
    rewards, values, next_value, terminated, truncated, final_values = (
        np.asarray(x, dtype=np.float32) for x in (rewards, values, next_value, terminated, truncated, final_values))
    rewards = rewards + np.float32(gamma) * final_values * truncated * (1.0 - terminated)
    not_done = 1.0 - np.maximum(terminated, truncated)
    discount, trace = np.float32(gamma), np.float32(gamma * gae_lambda)
    # The TD errors of all steps at once (each step's following value: the next step's, or next_value after the
    # last); only the advantages' recursion runs step by step.
    following_values = np.concatenate((values[1:], next_value[None]))
    deltas = rewards + discount * following_values * not_done - values
    decays = trace * not_done
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        last = deltas[t] + decays[t] * last
        advantages[t] = last
    return torch.from_numpy(advantages), torch.from_numpy(advantages + values)


def minibatch_indices(batch_size: int, num_minibatches: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu", uneven_ok: bool = False) -> list[torch.Tensor]:
    """A random partition of range(batch_size) into equal minibatches: every sample used exactly once.

    ``uneven_ok``: sizes may differ by one (a batch from which reset steps were dropped), and there are never
    more minibatches than samples, so none is empty (test_buffer.py)."""
    if batch_size % num_minibatches and not uneven_ok:
        raise ValueError(f"batch of {batch_size} does not split into {num_minibatches} minibatches")
    permutation = torch.randperm(batch_size, generator=generator).to(device)
    return list(permutation.tensor_split(min(num_minibatches, batch_size)))


def take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[idx]`` along the first dimension, in ``x``'s memory layout: ``index_select`` copies whole rows where
    advanced indexing copies element by element, and frames stored channels_last are gathered as the NHWC rows
    they are in memory (test_buffer.py: the same values as indexing)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)
    return x.index_select(0, idx)


@dataclass
class Batch:
    """A rollout flattened to [T·N, ...] for the update."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    masks: torch.Tensor | None = None  # the actions allowed at each step, where the env gives action masks

    def __len__(self) -> int:
        return len(self.obs)

    def rows(self, idx: torch.Tensor) -> Batch:
        return Batch(*(None if (tensor := getattr(self, field.name)) is None else take_rows(tensor, idx)
                       for field in fields(self)))

    def minibatches(self, num_minibatches: int) -> Iterator[Batch]:
        """One epoch: a random partition of the batch into ``num_minibatches`` minibatches (fewer where reset steps
        were dropped and fewer samples remain; sizes then differ by at most one)."""
        for idx in minibatch_indices(len(self), num_minibatches, device=self.obs.device, uneven_ok=True):
            yield self.rows(idx)


class RolloutBuffer:
    """Preallocated [num_steps, num_envs] storage for one rollout, filled in place one step of all envs at a time.

    Tensors the network produces (observations, actions, log-probs, values) live on the training device; the
    env's own outputs (rewards, terminations, truncations) stay in host memory until the rollout is complete,
    so the step loop never copies small arrays to the device.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype,
                 action_shape: tuple[int, ...], action_dtype: torch.dtype, device: torch.device,
                 obs_memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.num_steps, self.num_envs, self.device = num_steps, num_envs, device
        shape = (num_steps, num_envs)
        self.obs = _observation_storage(shape, obs_shape, obs_dtype, device, obs_memory_format)
        self.actions = torch.zeros(shape + action_shape, dtype=action_dtype, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.final_values = torch.zeros(shape, device=device)  # V(final observation) at truncated steps
        # Rewards in float64 as vector envs give them: the reward scaler, where there is one, scales the whole
        # rollout in ``finish``.
        self.rewards = np.zeros(shape, np.float64)
        self.terminated = np.zeros(shape, np.float32)
        self.truncated = np.zeros(shape, np.float32)  # truncated and not terminated: bootstrapped
        # False for a reset step of a NEXT_STEP vector env: its action was ignored, it is not a transition.
        self.valid = np.ones(shape, bool)
        self.masks: torch.Tensor | None = None  # made at the first action mask an env gives
        # On the CPU, rows are written through NumPy views of the storage, cheaper per step than torch's indexing.
        on_cpu = device.type == "cpu"
        self._host_obs = self.obs.numpy() if on_cpu and self.obs.is_contiguous() else None
        self._host_actions = self.actions.numpy() if on_cpu else None

    def store_obs(self, step: int, obs: torch.Tensor) -> torch.Tensor:
        """Stores a step's observations; returns them as the network should read them: ``obs`` itself, or the
        stored row where the storage is channels_last (then already in the convolutions' layout)."""
        if self._host_obs is not None:
            self._host_obs[step] = obs.numpy()
            return obs
        self.obs[step].copy_(obs)
        return obs if self.obs.is_contiguous() else self.obs[step]

    def store_action(self, step: int, action: torch.Tensor) -> np.ndarray:
        """Stores a step's actions; returns them as the NumPy array the env is given."""
        if self._host_actions is not None:
            action_host = action.numpy()
            self._host_actions[step] = action_host
            return action_host
        self.actions[step] = action
        return action.cpu().numpy()

    def store_mask(self, step: int, mask: torch.Tensor) -> None:
        if self.masks is None:
            self.masks = torch.ones((self.num_steps, self.num_envs, mask.shape[-1]), dtype=torch.bool,
                                    device=self.device)
        self.masks[step] = mask

    def store_step(self, step: int, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                   valid: np.ndarray | None) -> None:
        """What the envs answered. ``truncated``: cut by a time limit and not terminated; ``valid``: None where
        every env's step was a transition (SAME_STEP envs)."""
        self.rewards[step] = reward
        self.terminated[step] = terminated
        self.truncated[step] = truncated
        if valid is not None:
            self.valid[step] = valid

    def store_final_values(self, step: int, envs: np.ndarray, values: torch.Tensor) -> None:
        """V(final observation) of the envs (indices) truncated at ``step``; zero at every other step and env."""
        self.final_values[step, torch.as_tensor(envs, device=self.device)] = values

    def start_rollout(self) -> None:
        self.final_values.zero_()

    def finish(self, next_value: torch.Tensor, gamma: float, gae_lambda: float,
               reward_scaler: RewardScaler | None = None) -> Batch:
        """The completed rollout as one batch for the update: rewards scaled, GAE, flattened, reset steps left out
        (a reset step never follows a valid step's advantage: the step before it ended an episode, which cuts GAE
        there)."""
        if reward_scaler is not None:
            episode_ends = np.logical_or(self.terminated, self.truncated)
            valid = None if self.valid.all() else self.valid
            self.rewards[:] = reward_scaler.scale(self.rewards, episode_ends, valid)
        # One device->host copy of the values per rollout (none on CPU), GAE on the host, one copy back.
        advantages, returns = compute_gae(self.rewards, self.values.cpu(), next_value.cpu(), self.terminated,
                                          self.truncated, self.final_values.cpu(), gamma, gae_lambda)
        size = self.num_steps * self.num_envs
        batch = Batch(obs=self.obs.flatten(0, 1), actions=self.actions.flatten(0, 1),
                      logprobs=self.logprobs.reshape(size), values=self.values.reshape(size),
                      advantages=advantages.to(self.device).reshape(size),
                      returns=returns.to(self.device).reshape(size),
                      masks=None if self.masks is None else self.masks.flatten(0, 1))
        if self.valid.all():
            return batch
        return batch.rows(torch.from_numpy(np.flatnonzero(self.valid)).to(self.device))


def _observation_storage(shape: tuple[int, int], obs_shape: tuple[int, ...], dtype: torch.dtype,
                         device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    """[T, N, *obs_shape] zeros; image observations for a network that reads them channels_last are laid out
    [T, N, H, W, C] in memory (the tensor is the [T, N, C, H, W] view of that), so each frame is transposed once,
    when stored, rather than in every minibatch that takes it."""
    if memory_format == torch.channels_last and len(obs_shape) == 3:
        channels, height, width = obs_shape
        return torch.zeros(shape + (height, width, channels), dtype=dtype, device=device).permute(0, 1, 4, 2, 3)
    return torch.zeros(shape + obs_shape, dtype=dtype, device=device)

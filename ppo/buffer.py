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

    def evaluate(self, agent) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The agent's log-probabilities of the stored actions, entropies and values, with gradients."""
        return agent.evaluate(self.obs, self.actions, self.masks)


@dataclass
class Sequences:
    """Some of a rollout's sequences for a recurrent network (whole envs' rollouts, or pieces of them): [T, n] steps,
    the state each sequence started from, and which steps are transitions (``valid``; a NEXT_STEP reset step is
    replayed, for the state it leaves, but is no sample). The loss's tensors (log-probabilities, values, advantages,
    returns) hold the valid steps only, flattened time-major, the order ``evaluate`` gives."""

    obs: torch.Tensor
    actions: torch.Tensor
    masks: torch.Tensor | None
    starts: torch.Tensor
    state: torch.Tensor
    valid: torch.Tensor | None  # flat [T·n] indices of the valid steps; None: every step is valid
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    def __len__(self) -> int:
        return len(self.logprobs)

    def evaluate(self, agent) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = agent.replay(self.obs, self.actions, self.masks, self.starts, self.state)
        return outputs if self.valid is None else tuple(x.index_select(0, self.valid) for x in outputs)


@dataclass
class SequenceBatch:
    """A rollout kept as [T, N] sequences (N: the envs' whole rollouts, or their pieces of --sequence-length
    steps): a minibatch is a set of sequences (``Sequences``)."""

    obs: torch.Tensor
    actions: torch.Tensor
    masks: torch.Tensor | None
    starts: torch.Tensor
    state: torch.Tensor
    valid: torch.Tensor  # [T, N] bool
    step_logprobs: torch.Tensor  # [T, N], as the other per-step tensors
    step_values: torch.Tensor
    step_advantages: torch.Tensor
    step_returns: torch.Tensor

    def __len__(self) -> int:
        return int(self.valid.sum())

    @property
    def values(self) -> torch.Tensor:  # the valid steps', for the explained variance
        return self.step_values[self.valid]

    @property
    def returns(self) -> torch.Tensor:
        return self.step_returns[self.valid]

    def sequences(self, idx: torch.Tensor) -> Sequences:
        valid = self.valid[:, idx].reshape(-1)
        rows = None if bool(valid.all()) else torch.nonzero(valid).flatten()

        def flat(x: torch.Tensor) -> torch.Tensor:
            x = x[:, idx].reshape(-1)
            return x if rows is None else x.index_select(0, rows)
        return Sequences(self.obs[:, idx], self.actions[:, idx], None if self.masks is None else self.masks[:, idx],
                         self.starts[:, idx], self.state[:, idx], rows, flat(self.step_logprobs),
                         flat(self.step_values), flat(self.step_advantages), flat(self.step_returns))

    def minibatches(self, num_minibatches: int) -> Iterator[Sequences]:
        """One epoch: the sequences in a random partition into ``num_minibatches`` equal sets (their number is a
        multiple of --num-mini-batches, ppo/config.py check_batch checks), each set one minibatch."""
        for idx in minibatch_indices(self.starts.shape[1], num_minibatches, device=self.starts.device):
            yield self.sequences(idx)


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

    def advantages(self, next_value: torch.Tensor, gamma: float, gae_lambda: float,
                   reward_scaler: RewardScaler | None) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE's advantages and returns [T, N] on the host, the rewards scaled first where there is a scaler."""
        if reward_scaler is not None:
            episode_ends = np.logical_or(self.terminated, self.truncated)
            valid = None if self.valid.all() else self.valid
            self.rewards[:] = reward_scaler.scale(self.rewards, episode_ends, valid)
        # One device->host copy of the values per rollout (none on CPU), GAE on the host, one copy back.
        return compute_gae(self.rewards, self.values.cpu(), next_value.cpu(), self.terminated, self.truncated,
                           self.final_values.cpu(), gamma, gae_lambda)

    def finish(self, next_value: torch.Tensor, gamma: float, gae_lambda: float,
               reward_scaler: RewardScaler | None = None) -> Batch:
        """The completed rollout as one batch for the update: rewards scaled, GAE, flattened, reset steps left out
        (a reset step never follows a valid step's advantage: the step before it ended an episode, which cuts GAE
        there)."""
        advantages, returns = self.advantages(next_value, gamma, gae_lambda, reward_scaler)
        size = self.num_steps * self.num_envs
        batch = Batch(obs=self.obs.flatten(0, 1), actions=self.actions.flatten(0, 1),
                      logprobs=self.logprobs.reshape(size), values=self.values.reshape(size),
                      advantages=advantages.to(self.device).reshape(size),
                      returns=returns.to(self.device).reshape(size),
                      masks=None if self.masks is None else self.masks.flatten(0, 1))
        if self.valid.all():
            return batch
        return batch.rows(torch.from_numpy(np.flatnonzero(self.valid)).to(self.device))


class SequenceRolloutBuffer(RolloutBuffer):
    """A RolloutBuffer for a recurrent network: also each step's episode starts and the envs' hidden state
    before the first step of each sequence, written by the rollout policy (ppo/rollout.py ActInState);
    ``finish`` keeps the [T, N] sequences whole, or cuts each env's rollout into pieces of ``sequence_length``
    steps, each with the state it started from."""

    def __init__(self, *args, state: torch.Tensor, sequence_length: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.starts = np.zeros((self.num_steps, self.num_envs), bool)
        self.length = sequence_length or self.num_steps
        # [pieces per env, k, N, size]: the state before steps 0, L, 2L, ...
        self.states = torch.zeros((self.num_steps // self.length, *state.shape), dtype=state.dtype,
                                  device=state.device)

    def store_state(self, step: int, state: torch.Tensor) -> None:
        """The envs' state before step ``step``, kept where a sequence starts there."""
        if step % self.length == 0:
            self.states[step // self.length].copy_(state)

    def pieces(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, ...] -> [L, P·N, ...]: piece p of env n (its steps p·L to p·L + L - 1) in column p·N + n."""
        if self.length == self.num_steps:
            return x
        per_env = self.num_steps // self.length
        return x.reshape(per_env, self.length, *x.shape[1:]).transpose(0, 1).reshape(
            self.length, per_env * x.shape[1], *x.shape[2:])

    def finish(self, next_value: torch.Tensor, gamma: float, gae_lambda: float,
               reward_scaler: RewardScaler | None = None) -> SequenceBatch:
        advantages, returns = self.advantages(next_value, gamma, gae_lambda, reward_scaler)
        device = self.device
        # the state before each piece's first step: [k, P·N, size], in the columns' order
        states = self.states.transpose(0, 1).flatten(1, 2)
        return SequenceBatch(*(self.pieces(x) for x in (self.obs, self.actions)),
                             None if self.masks is None else self.pieces(self.masks),
                             self.pieces(torch.from_numpy(self.starts).to(device)), states,
                             self.pieces(torch.from_numpy(self.valid).to(device)),
                             *(self.pieces(x) for x in (self.logprobs, self.values, advantages.to(device),
                                                        returns.to(device))))


def _observation_storage(shape: tuple[int, int], obs_shape: tuple[int, ...], dtype: torch.dtype,
                         device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    """[T, N, *obs_shape] zeros; image observations for a network that reads them channels_last are laid out
    [T, N, H, W, C] in memory (the tensor is the [T, N, C, H, W] view of that), so each frame is transposed once,
    when stored, rather than in every minibatch that takes it."""
    if memory_format == torch.channels_last and len(obs_shape) == 3:
        channels, height, width = obs_shape
        return torch.zeros(shape + (height, width, channels), dtype=dtype, device=device).permute(0, 1, 4, 2, 3)
    return torch.zeros(shape + obs_shape, dtype=dtype, device=device)

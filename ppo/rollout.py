"""One rollout: ``num_steps`` steps of all envs, written into the rollout buffer.

Two things vary between runs and are decided once, before the loop, never in it:
- how the vector env resets a finished env (its autoreset mode): ``LearnerEnvs`` hides the difference;
- how an action is chosen (``rollout_policy``): one forward per step for action, log-probability and value, or the
  actor alone per step and one batched evaluation of the whole rollout after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from networks.actor_critic import ActorCritic, Head, action_mask
from networks.numpy_actor import numpy_sampler
from ppo.buffer import RolloutBuffer, SequenceRolloutBuffer
from ppo.distributed import SharedLogger
from ppo.faults import EnvError
from ppo.normalize import ObservationNormalizer
from ppo.tracking import PhaseTimers, RunLogger


@dataclass
class EnvStep:
    """What one step of all envs hands the learner."""

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray  # cut by a time limit and not terminated: to be bootstrapped
    valid: np.ndarray | None  # False for envs whose step was a reset (NEXT_STEP); None: all were transitions
    final_envs: np.ndarray  # indices of the envs in ``truncated``
    final_obs: torch.Tensor | None  # their last observations, as the learner sees observations
    episodes: tuple[np.ndarray, np.ndarray] | None  # returns and lengths of the episodes that ended


class LearnerEnvs:
    """A vector env as the learner sees it: observations normalized (where there is a normalizer) and as tensors on
    the training device, and one answer per step whatever the autoreset mode.

    SAME_STEP (Gymnasium's vector envs as wrappers.vector builds them): a finished env is reset within the step
    and its last observation is ``info["final_obs"]``. NEXT_STEP (native vector envs, ale-py's, EnvPool): the step
    returns the last observation, and the env's next step is a reset whose action is ignored, marked not valid
    so the update leaves it out. test_bootstrap.py holds both."""

    def __init__(self, envs: VectorEnv, obs_normalizer: ObservationNormalizer | None, device: torch.device,
                 head: Head) -> None:
        self.envs, self.obs_normalizer, self.device, self.head = envs, obs_normalizer, device, head
        # The actions allowed in the observations to act on next, where the env gives info["action_mask"] (True:
        # allowed; for MultiDiscrete the parts' masks concatenated) and the head takes masks; else None.
        self.mask: torch.Tensor | None = None
        self.next_step_mode = envs.metadata.get("autoreset_mode") == AutoresetMode.NEXT_STEP
        self.resetting = np.zeros(envs.num_envs, bool)  # NEXT_STEP: envs whose next step is a reset
        self.obs: torch.Tensor | None = None  # the observations to act on next
        # Envs whose observation to act on next starts an episode, where a recurrent network zeroes its state.
        # NEXT_STEP: also the reset step, and the step after it, which reads the new episode's first observation
        # (test_recurrent.py::test_the_state_is_zeroed_where_an_episode_starts).
        self.starts = np.ones(envs.num_envs, bool)

    def observe(self, obs: np.ndarray, update_statistics: bool = True) -> torch.Tensor:
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer(obs, update=update_statistics)
        return torch.from_numpy(obs) if self.device.type == "cpu" else torch.as_tensor(obs, device=self.device)

    def reset(self, seed: int) -> None:
        """Env i gets ``seed + i``."""
        try:
            obs, info = self.envs.reset(seed=seed)
        except Exception as error:
            raise EnvError from error
        self.resetting[:] = False
        self.starts = np.ones(self.envs.num_envs, bool)
        self.obs = self.observe(obs)
        self.mask = action_mask(info, self.head, self.device)

    def step(self, actions: np.ndarray) -> EnvStep:
        try:
            obs, reward, terminated, truncated, info = self.envs.step(actions)
        except Exception as error:  # the env's own code: the runner shows its traceback
            raise EnvError from error
        valid, self.starts = None, terminated | truncated
        if self.next_step_mode:
            valid, self.resetting = ~self.resetting, self.starts
            self.starts = self.starts | ~valid
        truncated = truncated & ~terminated
        final_envs = np.flatnonzero(truncated)
        final_obs = None
        if len(final_envs):
            last = obs[final_envs] if self.next_step_mode else np.stack(info["final_obs"][final_envs])
            final_obs = self.observe(last, update_statistics=False)
        self.obs = self.observe(obs)
        # SAME_STEP: a reset env's mask is its new episode's (in info; the last step's is in final_info).
        self.mask = action_mask(info, self.head, self.device)
        # Episode statistics: in final_info (SAME_STEP) or in info itself (vector-level statistics).
        statistics, episodes = info.get("final_info") or info, None
        if "episode" in statistics:
            done, finished = statistics["_episode"], statistics["episode"]
            episodes = finished["r"][done], finished["l"][done]
        return EnvStep(reward, terminated, truncated, valid, final_envs, final_obs, episodes)


class RolloutPolicy(Protocol):
    agent: ActorCritic

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None, starts: np.ndarray, step: int,
            buffer: RolloutBuffer) -> np.ndarray:
        """Chooses and stores step ``step``'s actions (among those ``mask`` allows; ``starts``: the envs whose
        observation starts an episode); returns them for the env."""

    def finish(self, buffer: RolloutBuffer) -> None:
        """Completes the buffer's log-probabilities and values once the rollout's last step is stored."""

    def value(self, obs: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
        """V(obs) of the observations to act on next (after the rollout: to bootstrap its last step)."""

    def final_values(self, envs: np.ndarray, final_obs: torch.Tensor) -> torch.Tensor:
        """V(final observation) of the episodes of ``envs`` truncated at this step, to bootstrap them."""


class FeedForward:
    """A network without memory: values from the observation alone."""

    agent: ActorCritic

    def value(self, obs: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
        return self.agent.value(obs)

    def final_values(self, envs: np.ndarray, final_obs: torch.Tensor) -> torch.Tensor:
        return self.agent.value(final_obs)


class ActEachStep(FeedForward):
    """A shared trunk: one forward per step gives the action, its log-probability and the value."""

    def __init__(self, agent: ActorCritic) -> None:
        self.agent = agent

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None, starts: np.ndarray, step: int,
            buffer: RolloutBuffer) -> np.ndarray:
        action, buffer.logprobs[step], buffer.values[step] = self.agent.act(obs, mask=mask)
        return buffer.store_action(step, action)

    def finish(self, buffer: RolloutBuffer) -> None:
        pass


class ActInState:
    """A recurrent network: one forward per step from the envs' hidden state, which it carries across steps and
    rollouts; an env's state is zeroed where its episode starts. The buffer gets the state where each of its
    sequences starts and each step's starts, so the update replays the same sequences (test_recurrent.py)."""

    def __init__(self, agent: ActorCritic, num_envs: int, device: torch.device) -> None:
        self.agent, self.device = agent, device
        self.state = agent.initial_state(num_envs, device)

    def starts_tensor(self, starts: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(starts).to(self.device)

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None, starts: np.ndarray, step: int,
            buffer: SequenceRolloutBuffer) -> np.ndarray:
        buffer.store_state(step, self.state)
        buffer.starts[step] = starts
        action, buffer.logprobs[step], buffer.values[step], self.state = self.agent.act_in_state(
            obs, self.state, self.starts_tensor(starts), mask=mask)
        return buffer.store_action(step, action)

    def finish(self, buffer: RolloutBuffer) -> None:
        pass

    def value(self, obs: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
        return self.agent.step(obs, self.state, self.starts_tensor(starts))[1]

    def final_values(self, envs: np.ndarray, final_obs: torch.Tensor) -> torch.Tensor:
        """From the state the episode reached: the state after this step's action, before any start zeroes it."""
        state = self.state[:, torch.from_numpy(envs).to(self.device)]
        return self.agent.step(final_obs, state, torch.zeros(len(envs), dtype=torch.bool, device=self.device))[1]


class SampleThenEvaluate(FeedForward):
    """A separate critic: each step runs the actor alone; the log-probabilities and values of the whole rollout
    come from one batched pass after it. The parameters do not change within a rollout, so they are the numbers a
    per-step forward would give (test_rollout.py)."""

    def __init__(self, agent: ActorCritic) -> None:
        self.agent = agent

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None, starts: np.ndarray, step: int,
            buffer: RolloutBuffer) -> np.ndarray:
        return buffer.store_action(step, self.agent.sample(obs, mask))

    def finish(self, buffer: RolloutBuffer) -> None:
        masks = None if buffer.masks is None else buffer.masks.flatten(0, 1)
        logprobs, _, values = self.agent.evaluate(buffer.obs.flatten(0, 1), buffer.actions.flatten(0, 1), masks)
        buffer.logprobs.copy_(logprobs.view_as(buffer.logprobs))
        buffer.values.copy_(values.view_as(buffer.values))


class NumpyActorThenEvaluate(SampleThenEvaluate):
    """SampleThenEvaluate with each step's actions drawn in NumPy (networks/numpy_actor.py says why), the same
    actions as the actor's torch forward would draw (test_networks.py)."""

    def __init__(self, agent: ActorCritic, sample: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> None:
        super().__init__(agent)
        self.sample = sample

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None, starts: np.ndarray, step: int,
            buffer: RolloutBuffer) -> np.ndarray:
        actions = self.sample(obs.numpy(), None if mask is None else mask.numpy())
        return buffer.store_action(step, torch.from_numpy(actions))


def rollout_policy(agent: ActorCritic, device: torch.device, bf16: bool, num_envs: int) -> RolloutPolicy:
    """How this run's rollouts choose actions, decided once. Under --bf16 the actions come from the same bfloat16
    forward as the stored log-probabilities, so from torch."""
    if agent.recurrent:
        return ActInState(agent, num_envs, device)
    if not agent.separate_critic:
        return ActEachStep(agent)
    sample = numpy_sampler(agent) if device.type == "cpu" and not bf16 else None
    return NumpyActorThenEvaluate(agent, sample) if sample is not None else SampleThenEvaluate(agent)


def collect_rollout(envs: LearnerEnvs, policy: RolloutPolicy, buffer: RolloutBuffer,
                    logger: RunLogger | SharedLogger, timers: PhaseTimers, global_step: int,
                    stop_requested: Callable[[], bool], world_size: int = 1) -> bool:
    """Fills ``buffer`` with the next ``buffer.num_steps`` steps of all envs (call under torch.no_grad).
    ``global_step``: env steps before this rollout (of ``world_size`` processes, each with these envs). False
    where a stop was requested before the rollout was complete: the buffer is then incomplete and the rollout is
    to be dropped. An env that raises raises EnvError, with the step it failed at."""
    buffer.start_rollout()
    steps_per_step = buffer.num_envs * world_size
    for step in range(buffer.num_steps):
        with timers.inference:
            obs = buffer.store_obs(step, envs.obs)
            if envs.mask is not None:
                buffer.store_mask(step, envs.mask)
            actions = policy.act(obs, envs.mask, envs.starts, step, buffer)
        with timers.env:
            try:
                result = envs.step(actions)
            except EnvError as error:
                error.global_step = global_step + step * steps_per_step
                raise
        buffer.store_step(step, result.reward, result.terminated, result.truncated, result.valid)
        if result.final_obs is not None:
            buffer.store_final_values(step, result.final_envs, policy.final_values(result.final_envs,
                                                                                   result.final_obs))
        if result.episodes is not None:
            logger.episodes_finished(global_step + (step + 1) * steps_per_step, *result.episodes)
        if stop_requested():
            return False
    with timers.inference:
        policy.finish(buffer)
    return True

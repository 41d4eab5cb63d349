"""The one PPO loop both scripts drive: collect a rollout -> GAE -> epochs of minibatch steps -> log.

It knows nothing about Atari or classic control, nor about how an env resets or how a network chooses actions:
``LearnerEnvs`` and ``rollout_policy`` (ppo/rollout.py) decide those once, before the first update.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from networks.actor_critic import ActorCritic
from ppo.buffer import RolloutBuffer, SequenceRolloutBuffer
from ppo.config import TrainConfig
from ppo.distributed import ONE_PROCESS, SharedLogger, World
from ppo.faults import EnvError, check_update, rollout_fault
from ppo.rollout import LearnerEnvs, collect_rollout, rollout_policy
from ppo.state import TrainState
from ppo.tracking import PhaseTimers, RunLogger
from ppo.update import mixed_precision, update_policy


@dataclass
class TrainResult:
    global_step: int
    steps: int  # env steps done by this call (a resumed run starts past 0)
    seconds: float
    mean_recent_return: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def make_buffer(envs: VectorEnv, agent: ActorCritic, cfg: TrainConfig, device: torch.device) -> RolloutBuffer:
    """Storage for one rollout: observations in the env's dtype (Atari frames stay uint8), in the layout the
    network reads them in; for a recurrent network, kept as sequences."""
    space = envs.single_observation_space
    obs_dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
    storage = (cfg.num_steps, cfg.num_envs, space.shape, obs_dtype, agent.head.action_shape, agent.head.action_dtype,
               device, agent.input_memory_format)
    if agent.recurrent:  # whole sequences, the episode starts and the state they started from
        return SequenceRolloutBuffer(*storage, state=agent.initial_state(cfg.num_envs, device),
                                     sequence_length=cfg.sequence_length)
    return RolloutBuffer(*storage)


def annealed(value: float, start: int, update: int, num_updates: int) -> float:
    """``value`` at update ``start``, falling linearly towards 0 after the last of ``num_updates`` updates."""
    return value * (1 - (update - start) / (num_updates - start))


def learning_rate_at(cfg: TrainConfig, update: int) -> float:
    """Annealed linearly from --learning-rate at the first update towards 0 after the last; an extended run from
    the rate it stood at when it was extended (``cfg.anneal_from``) towards 0 after its new last update."""
    if not cfg.anneal_lr:
        return cfg.learning_rate
    start, rate = cfg.anneal_from[:2] if cfg.anneal_from else (0, cfg.learning_rate)
    return annealed(rate, start, update, cfg.num_updates)


def clip_coef_at(cfg: TrainConfig, update: int) -> float:
    """--clip-coeff, or with --anneal-clip annealed linearly from it at the first update towards 0 after the
    last (Stable-Baselines3's ``lin_0.2`` clip range); an extended run, like the learning rate, from the
    coefficient it stood at (test_tuned.py::test_anneal_clip_lowers_the_clip_coefficient_linearly_to_0)."""
    if not cfg.anneal_clip:
        return cfg.clip_coef
    # A run extended before anneal_from held the clip coefficient saved (update, rate): its clip range anneals
    # from --clip-coeff at update 0, as it did then.
    start, coef = (cfg.anneal_from[0], cfg.anneal_from[2]) if cfg.anneal_from and len(cfg.anneal_from) == 3 \
        else (0, cfg.clip_coef)
    return annealed(coef, start, update, cfg.num_updates)


def train(envs: VectorEnv, state: TrainState, cfg: TrainConfig, device: torch.device,
          logger: RunLogger | SharedLogger, stop_requested: Callable[[], bool] = lambda: False,
          after_update: Callable[[TrainState], None] | None = None, world: World = ONE_PROCESS) -> TrainResult:
    """Trains ``state`` from its update index to cfg.num_updates.

    ``stop_requested`` is asked after every env step and every update (under torchrun, once per update by all
    ranks together); when it says yes, the rollout in progress is dropped, ``state`` is left as it was after the
    last completed update, and the result says interrupted. ``after_update`` is called with the state after each
    update (checkpoints). A non-finite reward, observation, loss or gradient raises NonFiniteError
    (ppo/faults.py) before it is used or checkpointed; an env that raises, EnvError; either with ``state`` rolled
    back to the last completed update."""
    agent, optimizer = state.agent, state.optimizer
    buffer = make_buffer(envs, agent, cfg, device)
    learner_envs = LearnerEnvs(envs, state.obs_normalizer, device, agent.head)
    policy = rollout_policy(agent, device, cfg.bf16, cfg.num_envs)
    timers = PhaseTimers()
    # A resumed run starts fresh episodes from seeds it has not used before; no two ranks share a seed.
    learner_envs.reset(seed=cfg.seed + state.global_step + world.rank * cfg.num_envs)
    # One process stops at its next env step; ranks under torchrun together, once per update (World.outcome).
    stop_alone = stop_requested if world.size == 1 else (lambda: False)
    start_step, start = state.global_step, time.perf_counter()

    def result(interrupted: bool = False) -> TrainResult:
        return TrainResult(state.global_step, state.global_step - start_step, time.perf_counter() - start,
                           logger.mean_recent_return, timers.seconds(), interrupted)

    for update in range(state.update, cfg.num_updates):
        if stop_alone():
            return result(interrupted=True)
        saved = state.rollout_start()
        learning_rate = optimizer.param_groups[0]["lr"] = learning_rate_at(cfg, update)
        error: Exception | None = None
        with torch.no_grad(), mixed_precision(device, cfg.bf16):
            try:
                complete = collect_rollout(learner_envs, policy, buffer, logger, timers, state.global_step,
                                           stop_alone, cfg.world_size)
            except EnvError as env_error:
                complete, error = False, env_error
            if complete:
                with timers.inference:
                    next_value = policy.value(learner_envs.obs, learner_envs.starts)
                error = rollout_fault(buffer, state.global_step, cfg.num_envs * cfg.world_size)
        error, stop = world.outcome(error, complete, world.size > 1 and stop_requested(), state.global_step)
        if error is not None or stop:
            state.roll_back(saved)  # as for a stop: the state after the last completed update, to be saved
            if error is not None:
                raise error
            return result(interrupted=True)
        with timers.gae:
            batch = buffer.finish(next_value, cfg.gamma, cfg.gae_lambda, state.reward_scaler)
        with timers.update:
            step_cfg = dataclasses.replace(cfg, clip_coef=clip_coef_at(cfg, update)) if cfg.anneal_clip else cfg
            stats = update_policy(agent, optimizer, batch, step_cfg, world)
        check_update(stats, state.global_step + cfg.steps_per_update)
        state.update, state.global_step = update + 1, state.global_step + cfg.steps_per_update
        sps = (state.global_step - start_step) / (time.perf_counter() - start)
        logger.update_finished(state.global_step, stats, learning_rate, sps)
        if after_update is not None:
            after_update(state)
    return result()

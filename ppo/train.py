"""The one PPO loop both scripts drive: collect a rollout -> GAE -> K epochs of shuffled minibatches -> log.

It knows nothing about Atari or classic control: it receives a Gymnasium vector env in SAME_STEP autoreset
mode (see wrappers.vector), an ActorCritic, and optional normalizers for continuous control.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import nn
from torch.optim.adam import adam

from networks.actor_critic import ActorCritic
from ppo.buffer import Batch, RolloutBuffer, minibatch_indices, take_rows
from ppo.checkpoint import rng_states, set_rng_states
from ppo.config import TrainConfig
from ppo.flat_parameters import flatten_parameters
from ppo.loss import LOSS_TERMS, ppo_loss, ratio_statistics
from ppo.normalize import ObservationNormalizer, RewardScaler
from ppo.tracking import RunLogger


@dataclass
class TrainState:
    """Everything that changes as training goes and that a checkpoint must hold to continue a run."""

    agent: ActorCritic
    optimizer: torch.optim.Optimizer
    obs_normalizer: ObservationNormalizer | None = None
    reward_scaler: RewardScaler | None = None
    update: int = 0  # updates completed
    global_step: int = 0  # env steps (all envs together) of the completed updates

    def rollout_start(self) -> dict:
        """What a rollout changes besides the env: observation statistics and the random generators (the reward
        scaler changes only once a rollout is complete)."""
        return {"rng": rng_states(), "obs": copy.deepcopy(self.obs_normalizer)}

    def roll_back(self, saved: dict) -> None:
        """Back to the state after the last completed update (an interrupted rollout is dropped)."""
        set_rng_states(saved["rng"])
        if self.obs_normalizer is not None:
            self.obs_normalizer.rms = saved["obs"].rms


def make_optimizer(agent: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    # fused: one kernel for the whole parameter update (measured on CPU: 1.06 -> 0.89 ms per minibatch step).
    return torch.optim.Adam([flatten_parameters(agent)], lr=learning_rate, eps=1e-5, fused=True)


def mixed_precision(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """--bf16: the network's forward under torch.autocast(bfloat16), for rollouts and updates alike, so the
    log-probabilities the update compares with were computed the same way."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@dataclass
class TrainResult:
    global_step: int
    steps: int  # env steps done by this call (a resumed run starts past 0)
    seconds: float
    mean_recent_return: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 − Var(target − predicted) / Var(target): 1 is a perfect critic, 0 no better than a constant."""
    target_var = target.var()
    if target_var == 0:
        return float("nan")
    return float(1 - (target - predicted).var() / target_var)


def clip_gradients_(parameters: list[torch.Tensor], max_norm: float) -> None:
    """Scales the gradients down to a total norm of at most ``max_norm``: ``nn.utils.clip_grad_norm_``'s
    arithmetic (a test checks the same numbers). For the one flat tensor of make_optimizer it is done here in
    three ops: clip_grad_norm_'s own Python (grouping by device and dtype, checks) cost more than its arithmetic,
    23 -> 8 µs per CartPole minibatch step."""
    if len(parameters) != 1:
        nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    gradient = parameters[0].grad
    coefficient = max_norm / (torch.linalg.vector_norm(gradient) + 1e-6)
    gradient.mul_(coefficient.clamp_(max=1.0))


def optimizer_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """``optimizer.step``, or for make_optimizer's fused Adam once its state exists the same update as one call of
    torch's functional ``torch.optim.adam.adam`` on that state: ``Optimizer.step``'s own machinery around it (a
    profiler record, hook lists, Adam's state and group checks) was half of a step in the update loop (55 -> 28 µs
    per CartPole minibatch step, about 2 % of a run). A test checks the same parameters and state as ``step()``;
    any other optimizer or option, and the first update (which creates the state), go through ``step()``. Step
    hooks registered on the optimizer would be skipped: this project registers none."""
    group = optimizer.param_groups[0]
    params = group["params"]
    state = optimizer.state.get(params[0]) if len(optimizer.param_groups) == 1 and len(params) == 1 else None
    if not (type(optimizer) is torch.optim.Adam and state and group["fused"] and not any(
            group[option] for option in ("amsgrad", "maximize", "weight_decay", "capturable", "differentiable"))):
        return optimizer.step
    beta1, beta2 = group["betas"]

    def step() -> None:
        adam(params, [params[0].grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]], fused=True,
             amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=0.0, eps=group["eps"],
             maximize=False)

    return step


def update_policy(agent: ActorCritic, optimizer: torch.optim.Optimizer, batch: Batch, cfg: TrainConfig
                  ) -> dict[str, float]:
    """num_epochs passes over the batch, each a random partition into num_minibatches equal minibatches.
    Returns the loss terms averaged over the minibatch steps and ratio_statistics over all their samples."""
    terms, log_ratios = [], []
    parameters = optimizer.param_groups[0]["params"]  # the one flat tensor of make_optimizer
    step = optimizer_step(optimizer)
    for _ in range(cfg.num_epochs):
        for idx in minibatch_indices(len(batch.obs), cfg.num_minibatches, device=batch.obs.device, uneven_ok=True):
            with mixed_precision(batch.obs.device, cfg.bf16):
                new_logprobs, entropy, new_values = agent.evaluate(take_rows(batch.obs, idx),
                                                                   take_rows(batch.actions, idx))
            loss, step_terms, log_ratio = ppo_loss(
                new_logprobs, take_rows(batch.logprobs, idx), take_rows(batch.advantages, idx), new_values,
                take_rows(batch.values, idx), take_rows(batch.returns, idx), entropy, cfg.clip_coef, cfg.vf_coef,
                cfg.ent_coef, clip_value_loss=cfg.clip_value_loss)
            for parameter in parameters:  # in place: the flat parameter's gradient is what the agent's are views of
                if parameter.grad is not None:
                    parameter.grad.zero_()
            loss.backward()
            clip_gradients_(parameters, cfg.max_grad_norm)
            step()
            terms.append(step_terms)
            log_ratios.append(log_ratio)
    stats = dict(zip(LOSS_TERMS, torch.stack(terms).mean(0), strict=True))
    stats.update(ratio_statistics(torch.cat(log_ratios), cfg.clip_coef))
    # One device->host transfer for all statistics, not one per minibatch.
    return dict(zip(stats.keys(), torch.stack(list(stats.values())).tolist(), strict=True))


def train(envs: VectorEnv, state: TrainState, cfg: TrainConfig, device: torch.device, logger: RunLogger,
          stop_requested: Callable[[], bool] = lambda: False,
          after_update: Callable[[TrainState], None] | None = None) -> TrainResult:
    """Trains ``state`` from its update index to cfg.num_updates.

    ``stop_requested`` is asked after every env step and every update; when it says yes, the rollout in progress
    is dropped, ``state`` is left as it was after the last completed update, and the result says interrupted.
    ``after_update`` is called with the state after each update (checkpoints)."""
    agent, optimizer = state.agent, state.optimizer
    obs_normalizer, reward_scaler = state.obs_normalizer, state.reward_scaler
    obs_space = envs.single_observation_space
    obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
    buffer = RolloutBuffer(cfg.num_steps, cfg.num_envs, obs_space.shape, obs_dtype, agent.head.action_shape,
                           agent.head.action_dtype, device, agent.memory_format)

    on_cpu = device.type == "cpu"

    def observe(obs: np.ndarray, update_stats: bool = True) -> torch.Tensor:
        if obs_normalizer is not None:
            obs = obs_normalizer(obs, update=update_stats)
        # On the CPU both share the array's memory; from_numpy without as_tensor's checks (1.4 -> 0.4 µs a step).
        return torch.from_numpy(obs) if on_cpu else torch.as_tensor(obs, device=device)

    # SAME_STEP (Gymnasium's vector envs as wrappers.vector builds them): a finished env is reset within the
    # step and its last observation is info["final_obs"]. NEXT_STEP (native vector envs, EnvPool): the step
    # returns the last observation, and the env's next step is a reset whose action is ignored: that step is
    # stored but marked invalid and left out of the update.
    next_step_mode = envs.metadata.get("autoreset_mode") == AutoresetMode.NEXT_STEP
    resetting = np.zeros(cfg.num_envs, bool)  # NEXT_STEP: envs whose next step is a reset

    # Env i gets seed + i; a resumed run starts fresh episodes from seeds it has not used before.
    next_obs_np, _ = envs.reset(seed=cfg.seed + state.global_step)
    next_obs = observe(next_obs_np)
    start_step = global_step = state.global_step
    # Where the time goes (bench/throughput.py prints it): a clock read per phase costs ~0.1 µs.
    phases = dict.fromkeys(("env", "inference", "gae", "update"), 0.0)
    start = time.perf_counter()

    def result(interrupted: bool = False) -> TrainResult:
        return TrainResult(state.global_step, state.global_step - start_step, time.perf_counter() - start,
                           logger.mean_recent_return, phases, interrupted)

    for update in range(state.update, cfg.num_updates):
        if stop_requested():
            return result(interrupted=True)
        rollout_start = state.rollout_start()
        learning_rate = cfg.learning_rate * (1 - update / cfg.num_updates if cfg.anneal_lr else 1.0)
        optimizer.param_groups[0]["lr"] = learning_rate
        buffer.final_values.zero_()
        buffer.truncated.fill(0.0)  # rows are written only at steps where an env was truncated
        noise = agent.head.rollout_noise(cfg.num_steps, cfg.num_envs, device)  # after rollout_start: rolled back too
        # On the CPU, actions from NumPy where the network offers it (ActorCritic.host_sampler): same noise; the
        # log-probabilities and values come from the batched evaluation after the rollout.
        host_sample = agent.host_sampler() if (on_cpu and agent.evaluate_rollout_in_batch and noise is not None
                                               and not cfg.bf16) else None
        host_noise = noise.numpy() if host_sample is not None else None

        # The rollout and its evaluation without autograd, entered once (~1.2 µs per step when entered per step).
        with torch.no_grad(), mixed_precision(device, cfg.bf16):
            for step in range(cfg.num_steps):
                global_step += cfg.num_envs
                tick = time.perf_counter()
                obs = buffer.store_obs(step, next_obs)
                if host_sample is not None:
                    action, action_np = None, host_sample(obs.numpy(), host_noise[step])
                else:
                    step_noise = None if noise is None else noise[step]
                    if agent.evaluate_rollout_in_batch:
                        action = agent.sample(obs, step_noise)
                    else:
                        action, buffer.logprobs[step], buffer.values[step] = agent.act(obs, noise=step_noise)
                    action_np = action.numpy() if on_cpu else action.cpu().numpy()
                buffer.store_action(step, action, action_np)
                tock = time.perf_counter()
                phases["inference"] += tock - tick

                next_obs_np, reward, terminated, truncated, info = envs.step(action_np)
                phases["env"] += time.perf_counter() - tock
                buffer.rewards[step] = reward
                buffer.terminated[step] = terminated
                if np.count_nonzero(truncated):  # rare; a third of ndarray.any()'s cost (0.4 vs 1.4 µs)
                    # Time-limit truncation (not also a termination): value the true last observation.
                    bootstrap = truncated & ~terminated
                    buffer.truncated[step] = bootstrap
                    if bootstrap.any():
                        idx = np.flatnonzero(bootstrap)
                        last_obs = next_obs_np[idx] if next_step_mode else np.stack(info["final_obs"][idx])
                        buffer.final_values[step, torch.as_tensor(idx, device=device)] = agent.value(
                            observe(last_obs, update_stats=False))
                if next_step_mode:
                    buffer.valid[step] = ~resetting
                    resetting = terminated | truncated
                next_obs = observe(next_obs_np)

                # Episode statistics: in final_info (SAME_STEP) or in info itself (vector-level statistics).
                episodes = info.get("final_info") or info
                if "episode" in episodes:
                    done, finished = episodes["_episode"], episodes["episode"]
                    logger.episodes_finished(global_step, finished["r"][done], finished["l"][done])
                if stop_requested():
                    state.roll_back(rollout_start)
                    return result(interrupted=True)

            if reward_scaler is not None:  # the whole rollout's rewards at once, as step by step (RewardScaler.scale)
                episode_ends = np.logical_or(buffer.terminated, buffer.truncated)
                buffer.rewards[:] = reward_scaler.scale(buffer.rewards, episode_ends,
                                                        buffer.valid if next_step_mode else None)
            tick = time.perf_counter()
            if agent.evaluate_rollout_in_batch:
                # The rollout's log-probabilities and values, all in one pass with the parameters it ran with.
                logprobs, _, values = agent.evaluate(buffer.obs.flatten(0, 1), buffer.actions.flatten(0, 1))
                buffer.logprobs.copy_(logprobs.view_as(buffer.logprobs))
                buffer.values.copy_(values.view_as(buffer.values))
            next_value = agent.value(next_obs)
            tock = time.perf_counter()
            phases["inference"] += tock - tick
        advantages, returns = buffer.compute_advantages(next_value, cfg.gamma, cfg.gae_lambda)
        batch = buffer.flatten(advantages, returns)
        tick = time.perf_counter()
        phases["gae"] += tick - tock
        stats = update_policy(agent, optimizer, batch, cfg)
        phases["update"] += time.perf_counter() - tick
        stats["explained_variance"] = explained_variance(batch.values, batch.returns)
        state.update, state.global_step = update + 1, global_step
        logger.update_finished(global_step, stats, learning_rate,
                               (global_step - start_step) / (time.perf_counter() - start))
        if after_update is not None:
            after_update(state)

    return result()

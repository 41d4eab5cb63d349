"""The PPO update: epochs of minibatch steps on one rollout, each zero_grad, backward, clip_grad_norm_ and Adam's
step (ppo/adam.py: torch.optim.Adam's arithmetic on the agent's parameters held as one flat tensor)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from networks.actor_critic import ActorCritic
from ppo.adam import Adam
from ppo.buffer import Batch
from ppo.config import TrainConfig
from ppo.distributed import ONE_PROCESS, World
from ppo.loss import LOSS_TERMS, ppo_loss, ratio_statistics


def make_optimizer(agent: nn.Module, learning_rate: float) -> Adam:
    """Call it once the agent is on its device: its parameters become views of the optimizer's flat tensor."""
    return Adam(agent, lr=learning_rate, eps=1e-5)


def mixed_precision(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """--bf16: the network's forward under torch.autocast(bfloat16), for rollouts and updates alike, so the
    log-probabilities the update compares with were computed the same way (test_precision.py)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 − Var(target − predicted) / Var(target): 1 is a perfect critic, 0 no better than a constant."""
    target_var = target.var()
    if target_var == 0:
        return float("nan")
    return float(1 - (target - predicted).var() / target_var)


def update_policy(agent: ActorCritic, optimizer: Adam, batch: Batch, cfg: TrainConfig,
                  world: World = ONE_PROCESS) -> dict[str, float]:
    """``cfg.num_epochs`` passes over the batch, each a random partition into minibatches, one optimizer step per
    minibatch (under torchrun on the gradient averaged over the ranks, ppo/distributed.py). Returns the loss
    terms and the gradient norm (before clipping) averaged over the minibatch steps, ratio_statistics over all
    their samples and the critic's explained variance; nothing for an empty batch (every step of the rollout a
    reset step)."""
    if len(batch) == 0:
        return {}
    terms, log_ratios, grad_norms = [], [], []
    for _ in range(cfg.num_epochs):
        for minibatch in batch.minibatches(cfg.num_minibatches):
            with mixed_precision(batch.obs.device, cfg.bf16):
                new_logprobs, entropy, new_values = minibatch.evaluate(agent)
            advantages = world.normalized_advantages(minibatch.advantages)
            loss, step_terms, log_ratio = ppo_loss(
                new_logprobs, minibatch.logprobs, minibatch.advantages if advantages is None else advantages,
                new_values, minibatch.values, minibatch.returns, entropy, cfg.clip_coef, cfg.vf_coef, cfg.ent_coef,
                normalize_advantages=advantages is None, clip_value_loss=cfg.clip_value_loss)
            optimizer.zero_grad()
            loss.backward()
            world.average_gradients(optimizer.flat.grad)
            grad_norms.append(nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], cfg.max_grad_norm))
            optimizer.step()
            terms.append(step_terms)
            log_ratios.append(log_ratio)
    stats = dict(zip(LOSS_TERMS, torch.stack(terms).mean(0), strict=True))
    stats.update(ratio_statistics(torch.cat(log_ratios), cfg.clip_coef))
    stats["grad_norm"] = torch.stack(grad_norms).mean()  # before clipping
    # One device->host transfer for all statistics, not one per minibatch.
    stats = dict(zip(stats.keys(), torch.stack(list(stats.values())).tolist(), strict=True))
    stats["explained_variance"] = explained_variance(batch.values, batch.returns)
    return stats

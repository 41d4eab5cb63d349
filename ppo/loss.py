"""The PPO clipped loss: pure functions of tensors, so they can be checked against hand-computed values."""

from __future__ import annotations

from typing import NamedTuple

import torch

LOSS_TERMS = ("policy_loss", "value_loss", "entropy")


class PPOLoss(NamedTuple):
    loss: torch.Tensor  # what the update differentiates
    terms: torch.Tensor  # detached: the policy loss, the value loss and the mean entropy (LOSS_TERMS), stacked
    log_ratio: torch.Tensor  # detached: log(π_new(a|s) / π_old(a|s)) per sample, for ratio_statistics


def _maximum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.maximum(a, b)``, with all of the gradient going to ``a`` where the two are equal instead of half to
    each. In PPO's two maxima the sides tie where the clip is inactive, and there both sides are the same
    function of the network's output, so the gradient comes out the same (halves of a number add up to it
    exactly; test_loss.py checks the gradients against torch.maximum's to the bit). Its backward is two ops
    instead of maximum's ten."""
    return torch.where(a >= b, a, b)


def ppo_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool = True,
    clip_value_loss: bool = True,
) -> PPOLoss:
    """Total loss = clipped surrogate − ent_coef·entropy + vf_coef·value loss, with its terms detached.

    Advantages are normalized per minibatch (mean 0, std 1). The value loss is ½·max((V−R)², (V_clip−R)²) where
    V_clip keeps the new value within ±clip_coef of the value at collection time, as in the PPO2 baselines.
    """
    log_ratio = new_logprobs - old_logprobs
    ratio = log_ratio.exp()
    if normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

    negated = -advantages
    # The clipped term takes no part in the backward: where it is the larger of the two, the ratio is outside the
    # clip range (inside it the terms are equal and _maximum gives the tie to the unclipped one), so its gradient
    # is zero there anyway: the same gradients to the bit (test_loss.py), with the clamp and its product out of
    # the graph.
    clipped_ratio = torch.clamp(ratio.detach(), 1 - clip_coef, 1 + clip_coef)
    policy_loss = _maximum(negated * ratio, negated * clipped_ratio).mean()

    value_error = (new_values - returns) ** 2
    if clip_value_loss:
        clipped_values = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
        value_error = _maximum(value_error, (clipped_values - returns) ** 2)
    value_loss = 0.5 * value_error.mean()

    entropy_mean = entropy.mean()
    loss = policy_loss - ent_coef * entropy_mean + vf_coef * value_loss
    with torch.no_grad():
        terms = torch.stack((policy_loss, value_loss, entropy_mean))
    return PPOLoss(loss, terms, log_ratio.detach())


def ratio_statistics(log_ratio: torch.Tensor, clip_coef: float) -> dict[str, torch.Tensor]:
    """How far the policy moved, from log-ratios: two estimators of KL(old || new), the naive −log r and the
    unbiased (r − 1) − log r (Schulman's k3), and the fraction of samples whose ratio left [1 − ε, 1 + ε].

    The update computes these once over all its minibatches' log-ratios rather than a dozen small ops per
    minibatch step (test_loss.py: the same numbers as pooling the samples)."""
    ratio = log_ratio.exp()
    return {
        "old_approx_kl": (-log_ratio).mean(),
        "approx_kl": ((ratio - 1) - log_ratio).mean(),
        "clipfrac": ((ratio - 1.0).abs() > clip_coef).float().mean(),
    }

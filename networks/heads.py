"""Action distributions as plain tensor functions.

torch.distributions objects validate their arguments and allocate on every call, once per env step in a rollout.
These heads compute the same quantities directly (test_networks.py compares them with torch.distributions), each
with one interface: sample, log_prob, entropy, log_prob_and_entropy (what the update needs, sharing intermediate
results) and mode.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _pick(log_p: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log p(action) from log-probabilities over all actions."""
    return log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    return -(log_p.exp() * log_p).sum(-1)


class CategoricalHead(nn.Module):
    """Discrete actions: the actor's outputs are logits over ``n`` actions."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.num_outputs = n
        self.action_shape: tuple[int, ...] = ()
        self.action_dtype = torch.long

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        # Gumbel-max: argmax(logits + Gumbel noise) is an exact sample from softmax(logits) (test_networks.py
        # checks the frequencies), without building a distribution object per rollout step.
        uniform = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
        return torch.argmax(logits - torch.log(-torch.log(uniform)), dim=-1)

    def log_prob(self, logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return _pick(torch.log_softmax(logits, dim=-1), action)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        return _entropy(torch.log_softmax(logits, dim=-1))

    def log_prob_and_entropy(self, logits: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # One log-softmax for both: in the update each op costs a forward and a backward node.
        log_p = torch.log_softmax(logits, dim=-1)
        return _pick(log_p, action), _entropy(log_p)

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.argmax(logits, dim=-1)


class GaussianHead(nn.Module):
    """Box actions: the actor's outputs are the mean; the log-std is a state-independent parameter."""

    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.num_outputs = action_dim
        self.action_shape = (action_dim,)
        self.action_dtype = torch.float32
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def sample(self, mean: torch.Tensor) -> torch.Tensor:
        return mean + self.log_std.exp() * torch.randn_like(mean)

    def log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z = (action - mean) * torch.exp(-self.log_std)
        return (-0.5 * z * z - self.log_std - _LOG_SQRT_2PI).sum(-1)

    def entropy(self, mean: torch.Tensor) -> torch.Tensor:
        return (0.5 + _LOG_SQRT_2PI + self.log_std).sum(-1).expand(mean.shape[:-1])

    def log_prob_and_entropy(self, mean: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_prob(mean, action), self.entropy(mean)

    def mode(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

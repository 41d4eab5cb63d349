"""Action distributions as plain tensor functions.

torch.distributions objects validate their arguments and allocate on every call, once per env step in a rollout.
These heads compute the same quantities directly (test_networks.py compares them with torch.distributions), each
with one interface: sample, log_prob, entropy, log_prob_and_entropy (what the update needs, sharing intermediate
results) and mode: Categorical (Discrete), Gaussian (Box), MultiCategorical (MultiDiscrete), Bernoulli
(MultiBinary).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _pick(log_p: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log p(action) from log-probabilities over all actions."""
    return log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    return -(log_p.exp() * log_p).sum(-1)


def gumbel_max(logits: torch.Tensor) -> torch.Tensor:
    """argmax(logits + Gumbel noise): an exact sample from softmax(logits) along the last dimension
    (test_networks.py checks the frequencies), without building a distribution object per rollout step."""
    uniform = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
    return torch.argmax(logits - torch.log(-torch.log(uniform)), dim=-1)


class CategoricalHead(nn.Module):
    """Discrete actions: the actor's outputs are logits over ``n`` actions."""

    takes_masks = True  # networks.actor_critic.masked applies to its logits

    def __init__(self, n: int) -> None:
        super().__init__()
        self.num_outputs = n
        self.action_shape: tuple[int, ...] = ()
        self.action_dtype = torch.long

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        return gumbel_max(logits)

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

    takes_masks = False

    def __init__(self, action_dim: int, initial_log_std: float = 0.0) -> None:
        super().__init__()
        self.num_outputs = action_dim
        self.action_shape = (action_dim,)
        self.action_dtype = torch.float32
        self.log_std = nn.Parameter(torch.full((action_dim,), float(initial_log_std)))

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


class MultiCategoricalHead(nn.Module):
    """MultiDiscrete actions: one categorical per part over its slice of the logits; the parts' log-probabilities
    and entropies are summed (the parts are drawn independently)."""

    takes_masks = True  # networks.actor_critic.masked applies to its logits

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.num_outputs = sum(self.sizes)
        self.action_shape = (len(self.sizes),)
        self.action_dtype = torch.long

    def parts(self, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return logits.split(self.sizes, dim=-1)

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.stack([gumbel_max(part) for part in self.parts(logits)], dim=-1)

    def log_prob_and_entropy(self, logits: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_ps = [torch.log_softmax(part, dim=-1) for part in self.parts(logits)]
        log_prob = sum(_pick(log_p, action[..., i]) for i, log_p in enumerate(log_ps))
        return log_prob, sum(_entropy(log_p) for log_p in log_ps)

    def log_prob(self, logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.log_prob_and_entropy(logits, action)[0]

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        return sum(_entropy(torch.log_softmax(part, dim=-1)) for part in self.parts(logits))

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.stack([part.argmax(dim=-1) for part in self.parts(logits)], dim=-1)


class BernoulliHead(nn.Module):
    """MultiBinary actions: one Bernoulli per bit, the actor's outputs its logits; log-probabilities and entropies
    summed over the bits."""

    takes_masks = False

    def __init__(self, n: int) -> None:
        super().__init__()
        self.num_outputs = n
        self.action_shape = (n,)
        self.action_dtype = torch.long

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        return (torch.rand_like(logits) < torch.sigmoid(logits)).long()

    def log_prob(self, logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        bits = action.to(logits.dtype)
        return (bits * F.logsigmoid(logits) + (1 - bits) * F.logsigmoid(-logits)).sum(-1)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum(-1)

    def log_prob_and_entropy(self, logits: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_prob(logits, action), self.entropy(logits)

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits > 0).long()

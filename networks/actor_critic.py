"""What the training loop asks of a network, whatever its body: act, value, evaluate."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from networks.heads import CategoricalHead, GaussianHead


def layer_init(layer: nn.Module, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std`` and constant bias, as in the PPO implementation details."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32: a dtype check costs less than a no-op ``.float()``, which the rollout would pay per step."""
    return x if x.dtype == torch.float32 else x.float()


def make_head(action_space: gym.Space) -> CategoricalHead | GaussianHead:
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(int(action_space.n))
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianHead(int(action_space.shape[0]))
    raise ValueError(f"unsupported action space {action_space}: only Discrete and 1-D Box are supported")


class ActorCritic(nn.Module):
    """Subclasses define ``head`` and ``forward(obs) -> (distribution parameters, value)``."""

    head: CategoricalHead | GaussianHead
    # True where the actor runs without the critic (separate networks): the rollout then only samples actions
    # (``sample``) and gets the log-probabilities and values of the whole rollout from one batched ``evaluate``
    # after it; the parameters do not change within a rollout, so the numbers are the same. False where one
    # forward gives all three (a shared trunk): then ``act`` per step.
    evaluate_rollout_in_batch = False
    # The layout its convolutions want image batches in (the rollout buffer stores frames that way).
    memory_format = torch.contiguous_format

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward's outputs in float32, also under torch.autocast (--bf16): the distribution and the loss are
        computed in full precision."""
        params, value = self(obs)
        return as_float32(params), as_float32(value)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.outputs(obs)[1]

    def act(self, obs: torch.Tensor, deterministic: bool = False, noise: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward for action, its log-probability and the value (call under torch.no_grad in rollouts).
        ``noise``: this step's slice of ``head.rollout_noise``, if the rollout drew it in advance."""
        params, value = self.outputs(obs)
        action = self.head.mode(params) if deterministic else self.head.sample(params, noise)
        return action, self.head.log_prob(params, action), value

    def sample(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """An action for each observation (call under torch.no_grad in rollouts); ``noise`` as in ``act``."""
        return self.head.sample(self.outputs(obs)[0], noise)

    def host_sampler(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """Where a network offers one: ``sample`` as a function of NumPy arrays (observations, this step's
        slice of ``head.rollout_noise``) to actions, on the parameters as they are when it is called. Only for
        parameters in CPU memory, float32 rollouts (not under --bf16's autocast) and networks that evaluate
        rollouts in batch (it gives no log-probabilities or values). None: use ``sample``."""
        return None

    def evaluate(self, obs: torch.Tensor, action: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probability of stored actions, entropy and value, with gradients, for the update."""
        params, value = self.outputs(obs)
        return *self.head.log_prob_and_entropy(params, action), value

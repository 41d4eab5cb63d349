"""The MLP actor-critic for flat observations: separate 64-64 tanh actor and critic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from networks.actor_critic import ActorCritic, as_float32, layer_init, make_head


def _mlp(in_features: int, hidden: int, out_features: int, out_std: float) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(in_features, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, out_features), std=out_std),
    )


def _run(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The Sequential's own computation, as three fused linear calls: nn.Module dispatch costs ~2 µs per layer,
    which at batch 4 is most of the forward (measured: actor 21 -> 12 µs). The weights are read from the layers'
    own parameter dicts, which are always current: ``layer.weight`` goes through nn.Module.__getattr__, about
    0.45 µs a lookup (a rollout step's actor 12.8 -> 10.1 µs)."""
    first, _, second, _, last = mlp._modules.values()
    first, second, last = first._parameters, second._parameters, last._parameters
    hidden = torch.tanh(F.linear(x, first["weight"], first["bias"]))
    hidden = torch.tanh(F.linear(hidden, second["weight"], second["bias"]))
    return F.linear(hidden, last["weight"], last["bias"])


class MLPActorCritic(ActorCritic):
    evaluate_rollout_in_batch = True  # rollout steps run the actor alone (measured: 42 -> 22 µs per step)

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.Space, hidden: int = 64) -> None:
        super().__init__()
        obs_dim = int(np.prod(observation_space.shape))
        self.head = make_head(action_space)
        self.critic = _mlp(obs_dim, hidden, 1, out_std=1.0)
        self.actor = _mlp(obs_dim, hidden, self.head.num_outputs, out_std=0.01)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = as_float32(obs)
        return _run(self.actor, obs), _run(self.critic, obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return as_float32(_run(self.critic, as_float32(obs)).squeeze(-1))

    def sample(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        modules = self._modules  # as in _run: nn.Module.__getattr__ costs ~0.45 µs a lookup, once per rollout step
        return modules["head"].sample(as_float32(_run(modules["actor"], as_float32(obs))), noise)

"""The MLP actor-critic for flat observations: separate 64-64 tanh actor and critic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from networks.actor_critic import ActorCritic, layer_init, make_head, masked


class TanhMLP(nn.Sequential):
    """Linear, Tanh, Linear, Tanh, Linear, saved as nn.Sequential saves them (``actor.0.weight``, ...).

    Its forward runs each Linear as ``F.linear`` on the layer's own weight and bias, and each Tanh as
    ``torch.tanh``, instead of calling every layer as a module: nn.Module's call machinery costs more than a
    64-unit layer's arithmetic at a rollout step's batch of a few observations, and the MLP runs at every env
    step (docs/performance.md). test_networks.py checks the outputs equal nn.Sequential's own forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = F.linear(x, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else torch.tanh(x)
        return x


def mlp(in_features: int, hidden: int, out_features: int, out_std: float) -> TanhMLP:
    return TanhMLP(
        layer_init(nn.Linear(in_features, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, out_features), std=out_std),
    )


class MLPActorCritic(ActorCritic):
    separate_critic = True

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.Space, hidden: int = 64,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        obs_dim = int(np.prod(observation_space.shape))
        self.head = make_head(action_space)
        self.critic = mlp(obs_dim, hidden, 1, out_std=1.0)
        self.actor = mlp(obs_dim, hidden, self.head.num_outputs, out_std=0.01)
        self.to(device)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = obs.float()
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs.float()).squeeze(-1).float()

    def sample(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.sample(masked(self.actor(obs.float()).float(), mask))

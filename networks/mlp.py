"""The MLP actor-critic for flat observations: separate actor and critic, 64-64 tanh by default (main.py's
--hidden-sizes and --activation change both)."""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from networks.actor_critic import ActorCritic, layer_init, make_head, masked

# --activation: the module (what nn.Sequential holds and saves) and the function MLP.forward calls.
ACTIVATIONS = {"tanh": (nn.Tanh, torch.tanh), "relu": (nn.ReLU, torch.relu)}


class MLP(nn.Sequential):
    """Linear, activation, ..., Linear, saved as nn.Sequential saves them (``actor.0.weight``, ...).

    Its forward runs each Linear as ``F.linear`` on the layer's own weight and bias, and each activation as its
    function (``torch.tanh``), instead of calling every layer as a module: nn.Module's call machinery costs more
    than a 64-unit layer's arithmetic at a rollout step's batch of a few observations, and the MLP runs at every
    env step (docs/performance.md). test_networks.py checks the outputs equal nn.Sequential's own forward."""

    def __init__(self, *layers: nn.Module, activation: str = "tanh") -> None:
        super().__init__(*layers)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        function = ACTIVATIONS[self.activation][1]
        for layer in self:
            x = F.linear(x, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else function(x)
        return x


def mlp(in_features: int, hidden_sizes: tuple[int, ...], out_features: int, out_std: float,
        activation: str = "tanh", ortho_init: bool = True) -> MLP:
    """Hidden layers of ``hidden_sizes``; with ``ortho_init`` orthogonal weights (gain √2, the output layer's
    ``out_std``) and zero biases, as in the PPO implementation details; else torch's default initialization."""
    init = layer_init if ortho_init else (lambda layer, std=0.0: layer)
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [init(nn.Linear(in_features, size)), ACTIVATIONS[activation][0]()]
        in_features = size
    return MLP(*layers, init(nn.Linear(in_features, out_features), std=out_std), activation=activation)


class MLPActorCritic(ActorCritic):
    separate_critic = True

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.Space,
                 hidden_sizes: tuple[int, ...] = (64, 64), activation: str = "tanh", ortho_init: bool = True,
                 initial_log_std: float = 0.0, device: torch.device | str = "cpu") -> None:
        super().__init__()
        obs_dim = int(np.prod(observation_space.shape))
        self.head = make_head(action_space, initial_log_std)
        self.critic = mlp(obs_dim, hidden_sizes, 1, 1.0, activation, ortho_init)
        self.actor = mlp(obs_dim, hidden_sizes, self.head.num_outputs, 0.01, activation, ortho_init)
        self.to(device)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = obs.float()
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs.float()).squeeze(-1).float()

    def sample(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.sample(masked(self.actor(obs.float()).float(), mask))


def network_options(args: argparse.Namespace | dict) -> dict:
    """The network options of networks.actor_critic_for from either script's flags (a run's saved ``args``: runs
    saved before the flags existed, and main_atari.py's runs, which have no MLP flags, get the defaults)."""
    saved = vars(args) if isinstance(args, argparse.Namespace) else args
    return {"hidden_sizes": tuple(saved.get("hidden_sizes", (64, 64))), "activation": saved.get("activation", "tanh"),
            "ortho_init": saved.get("ortho_init", True), "initial_log_std": saved.get("initial_log_std", 0.0),
            "recurrent": saved.get("recurrent"), "recurrent_size": saved.get("recurrent_size")}

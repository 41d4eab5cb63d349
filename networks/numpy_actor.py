"""The MLP actor's rollout step in NumPy: a speed path for CPU rollouts with discrete actions.

Why it exists: at a rollout step's batch of a few observations, each torch op costs several microseconds of
dispatch, far more than its arithmetic, and torch's work between env steps also slows the env step that follows.
Sampling the rollout's actions in NumPy instead makes a default CartPole run several percent faster as a whole
(docs/performance.md has the A/B figures). It computes what ``MLPActorCritic.sample`` computes: the actor's logits
(F.linear and the activation, in NumPy on views of the same weights) and a Gumbel-max draw from the same
torch uniforms, so the actions are the same (test_networks.py). The log-probabilities and values the update
uses still come from torch, from one batched evaluation after the rollout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from networks.heads import CategoricalHead
from networks.mlp import MLPActorCritic


def numpy_sampler(agent: nn.Module) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray] | None:
    """``agent.sample`` as a function of a NumPy batch of observations, for an MLP actor-critic with a categorical
    head whose parameters are float32 in CPU memory; None for any other agent. The function reads the parameters
    as they are when it is called (NumPy views share their memory: the optimizer updates them in place)."""
    if not (isinstance(agent, MLPActorCritic) and isinstance(agent.head, CategoricalHead)):
        return None
    layers = [(layer.weight.detach(), layer.bias.detach()) for layer in agent.actor if isinstance(layer, nn.Linear)]
    if any(weight.device.type != "cpu" or weight.dtype != torch.float32 for weight, _ in layers):
        return None
    layers = [(weight.numpy().T, bias.numpy()) for weight, bias in layers]
    activation = np.tanh if agent.actor.activation == "tanh" else (lambda x: np.maximum(x, 0))
    num_actions = agent.head.num_outputs
    tiny = np.finfo(np.float32).tiny

    lowest = np.finfo(np.float32).min

    def sample(obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        x = obs.astype(np.float32, copy=False)
        for weight, bias in layers[:-1]:
            x = activation(x @ weight + bias)
        logits = x @ layers[-1][0] + layers[-1][1]
        if mask is not None:  # as networks.actor_critic.masked does
            logits = np.where(mask, logits, lowest)
        uniform = torch.rand(len(obs), num_actions).numpy()  # the numbers CategoricalHead.sample would draw
        return np.argmax(logits - np.log(-np.log(np.maximum(uniform, tiny))), axis=-1)

    return sample

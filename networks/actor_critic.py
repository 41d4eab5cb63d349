"""What the training loop asks of a network, whatever its body: value, act, sample, evaluate.

A subclass defines ``head`` (the action distribution) and ``forward(obs) -> (distribution parameters, value)``,
and says whether its critic is a network of its own (``separate_critic``): then a rollout step may run the actor
alone. How inputs are laid out in memory and in which dtype the network computes are its own business.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from networks.heads import BernoulliHead, CategoricalHead, GaussianHead, MultiCategoricalHead

Head = CategoricalHead | GaussianHead | MultiCategoricalHead | BernoulliHead


def layer_init(layer: nn.Module, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std`` and constant bias, as in the PPO implementation details."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def make_head(action_space: gym.Space, initial_log_std: float = 0.0) -> Head:
    """The action distribution for a Discrete, 1-D Box, 1-D MultiDiscrete or 1-D MultiBinary space (a Box's
    Gaussian starts with log-std ``initial_log_std``)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(int(action_space.n))
    if len(action_space.shape or ()) == 1:
        if isinstance(action_space, gym.spaces.Box):
            return GaussianHead(int(action_space.shape[0]), initial_log_std)
        if isinstance(action_space, gym.spaces.MultiDiscrete):
            return MultiCategoricalHead([int(n) for n in action_space.nvec])
        if isinstance(action_space, gym.spaces.MultiBinary):
            return BernoulliHead(int(action_space.shape[0]))
    raise ValueError(f"unsupported action space {action_space}: Discrete, and 1-D Box, MultiDiscrete or "
                     "MultiBinary are")


class ActorCritic(nn.Module):
    head: Head
    separate_critic = False  # True: the actor's output does not depend on the critic's layers
    recurrent = False  # True: it reads observations with a hidden state (networks/recurrent.py)
    # The memory layout the network reads image batches fastest in: a rollout buffer may store frames that way.
    input_memory_format = torch.contiguous_format

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward``'s outputs in float32, also under torch.autocast (--bf16): the distribution and the loss are
        computed in full precision."""
        params, value = self(obs)
        return params.float(), value.float()

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.outputs(obs)[1]

    def act(self, obs: torch.Tensor, deterministic: bool = False, mask: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Action, its log-probability and the value, from one forward (call under torch.no_grad)."""
        params, value = self.outputs(obs)
        params = masked(params, mask)
        action = self.head.mode(params) if deterministic else self.head.sample(params)
        return action, self.head.log_prob(params, action), value

    def sample(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """An action for each observation, from the actor alone where ``separate_critic``."""
        return self.head.sample(masked(self.outputs(obs)[0], mask))

    def evaluate(self, obs: torch.Tensor, action: torch.Tensor, mask: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probability of stored actions, entropy and value, with gradients, for the update."""
        params, value = self.outputs(obs)
        return *self.head.log_prob_and_entropy(masked(params, mask), action), value

    # What a caller that plays episodes one step at a time uses (ppo.evaluate), the same for every network: a
    # feed-forward one has no state (None) and ignores the episode starts.
    def initial_state(self, num_envs: int, device: torch.device | str | None = None) -> torch.Tensor | None:
        return None

    def act_in_state(self, obs: torch.Tensor, state: torch.Tensor | None, starts: torch.Tensor,
                     deterministic: bool = False, mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``act`` with the hidden state carried: (action, log-probability, value, the state after the step)."""
        return *self.act(obs, deterministic, mask), state


def action_mask(info: dict, head: Head, device: torch.device | str) -> torch.Tensor | None:
    """The env's ``info["action_mask"]`` (True: allowed) as a boolean tensor, where the head takes masks; else
    None. For a vector env's info, one row per env."""
    if not head.takes_masks or "action_mask" not in info:
        return None
    return torch.as_tensor(np.asarray(info["action_mask"], dtype=bool), device=device)


def masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Logits with the actions ``mask`` forbids (False) at the lowest finite value: they are never sampled, and the
    log-probabilities and entropy are those of the distribution over the allowed actions (a finite value rather
    than -inf keeps 0 · log 0 at 0 in the entropy). For categorical heads: Discrete, and MultiDiscrete with the
    parts' masks concatenated (test_masks.py)."""
    if mask is None:
        return logits
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min)

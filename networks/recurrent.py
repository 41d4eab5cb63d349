"""Memory: an encoder (the MLP trunk, a CNN, the multi-input encoders), then an LSTM or GRU, then the actor and
critic heads, as CleanRL's ppo_atari_lstm.py shares one LSTM between them.

The hidden state is one tensor [k, envs, size] (k = 2 for an LSTM: h and c; 1 for a GRU) that the caller carries:
``step`` advances it by one observation of each env, ``replay`` re-runs whole rollouts from the state they started
from. Both zero an env's state where its episode starts (``starts``), before the step that reads the episode's first
observation, so nothing of one episode reaches the next (test_recurrent.py).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from networks.actor_critic import ActorCritic, layer_init, make_head, masked
from networks.cnn import cpu_memory_format, image_encoder, scaled
from networks.gru import GRUSequence
from networks.mlp import ACTIVATIONS

KINDS = ("lstm", "gru")
DEFAULT_SIZE = {"mlp": 64, "cnn": 128}  # the zoo's NoVel rows (lstm_hidden_size 64); CleanRL's Atari LSTM (128)


class MLPEncoder(nn.Sequential):
    """--hidden-sizes layers with --activation after each (orthogonal, gain √2, with ortho_init)."""

    def __init__(self, in_features: int, hidden_sizes: tuple[int, ...], activation: str, ortho_init: bool) -> None:
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            linear = nn.Linear(in_features, size)
            layers += [layer_init(linear) if ortho_init else linear, ACTIVATIONS[activation][0]()]
            in_features = size
        super().__init__(*layers)
        self.features = in_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return super().forward(obs.float())


class ImageEncoder(nn.Module):
    """A (C, H, W) uint8 image through the CNN of networks/cnn.py to ``features`` ReLU units."""

    def __init__(self, shape: tuple[int, ...], features: int, memory_format: torch.memory_format) -> None:
        super().__init__()
        self.trunk = image_encoder(shape, features)
        self.features, self.memory_format = features, memory_format

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.trunk(scaled(obs, self.memory_format))


class MultiInputEncoder(nn.Module):
    """The multi-input network's parts (networks/multi_input.py) to its shared layer's features."""

    def __init__(self, network: ActorCritic) -> None:
        super().__init__()
        del network.actor, network.critic  # the recurrent network's heads replace them
        self.network = network
        self.features = network.trunk[0].out_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.network.trunk(self.network.features(obs))


class RecurrentActorCritic(ActorCritic):
    recurrent = True

    def __init__(self, encoder: nn.Module, action_space: gym.Space, kind: str, size: int,
                 initial_log_std: float = 0.0, device: torch.device | str = "cpu",
                 input_memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        self.head = make_head(action_space, initial_log_std)
        self.encoder = encoder
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(encoder.features, size)
        for name, param in self.rnn.named_parameters():  # as CleanRL's LSTM agent
            nn.init.constant_(param, 0) if "bias" in name else nn.init.orthogonal_(param, 1.0)
        self.kind, self.size = kind, size
        self.actor = layer_init(nn.Linear(size, self.head.num_outputs), std=0.01)
        self.critic = layer_init(nn.Linear(size, 1), std=1.0)
        self.input_memory_format = input_memory_format
        self.to(device)

    def initial_state(self, num_envs: int, device: torch.device | str | None = None) -> torch.Tensor:
        layers = 2 if self.kind == "lstm" else 1
        return torch.zeros(layers, num_envs, self.size, device=device or self.actor.weight.device)

    def recur(self, features: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``features`` [T, n, F] through the RNN from ``state``, an env's state zeroed at the steps where
        ``starts`` [T, n] says its episode begins."""
        if self.kind == "gru" and torch.is_grad_enabled() and features.device.type == "cpu":
            # networks/gru.py: the whole rollout in one call, faster both ways (CUDA: cuDNN's GRU is fused already)
            rnn = self.rnn
            output = GRUSequence.apply(features, state, starts, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0,
                                       rnn.bias_hh_l0)
            return output, output[-1:]
        return self.recur_in_chunks(features, state, starts)

    def recur_in_chunks(self, features: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``recur`` with nn.LSTM or nn.GRU: runs of steps where no env starts go to it in one call."""
        keep = 1.0 - starts.to(features.dtype)
        # Where an episode starts, the chunk ends before it: test_recurrent.py compares chunked with step by step.
        bounds = [0, *(torch.nonzero(starts[1:].any(1)).flatten() + 1).tolist(), len(features)]
        outputs = []
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            state = state * keep[begin][None, :, None]
            output, state = self.run(features[begin:end], state)
            outputs.append(output)
        return torch.cat(outputs), state

    def run(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "lstm":
            output, (h, c) = self.rnn(features, (state[0:1].contiguous(), state[1:2].contiguous()))
            return output, torch.cat((h, c))
        output, h = self.rnn(features, state.contiguous())
        return output, h

    def heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(hidden).float(), self.critic(hidden).squeeze(-1).float()

    def step(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of n envs: (distribution parameters, value, the state after it)."""
        return self.advance(obs, state * (1.0 - starts.to(state.dtype))[None, :, None])

    def advance(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``step`` where the caller has already zeroed the state of envs whose episode starts (no data-dependent
        branch, so torch.onnx traces it: ppo/export.py)."""
        hidden, state = self.run(self.encoder(obs).float()[None], state)
        return *self.heads(hidden[0]), state

    def act_in_state(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor, deterministic: bool = False,
                     mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        params, value, state = self.step(obs, state, starts)
        params = masked(params, mask)
        action = self.head.mode(params) if deterministic else self.head.sample(params)
        return action, self.head.log_prob(params, action), value, state

    def replay(self, obs: torch.Tensor, actions: torch.Tensor, masks: torch.Tensor | None, starts: torch.Tensor,
               state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities, entropies and values [T·n] (time-major) of the rollouts ``obs`` [T, n, ...] of n
        envs, re-run from ``state``, the state they had at the rollout's start, with the same episode starts:
        the encoder sees all T·n observations in one batch, the RNN steps through time."""
        steps, envs = starts.shape
        features = self.encoder(obs.flatten(0, 1)).float().view(steps, envs, -1)
        hidden, _ = self.recur(features, state, starts)
        params, values = self.heads(hidden.flatten(0, 1))
        masks = None if masks is None else masks.flatten(0, 1)
        return *self.head.log_prob_and_entropy(masked(params, masks), actions.flatten(0, 1)), values

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise TypeError("a recurrent network reads observations with a state: step, replay")


def recurrent_actor_critic(observation_space: gym.Space, action_space: gym.Space, kind: str, size: int | None,
                           options: dict, device: torch.device | str) -> RecurrentActorCritic:
    """The encoder the feed-forward network would have (networks.actor_critic_for), an RNN of ``size`` after it
    (default: 64 after the MLP, 128 after a CNN)."""
    from networks.multi_input import MultiInputActorCritic

    memory_format = torch.contiguous_format
    if isinstance(observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        encoder: nn.Module = MultiInputEncoder(MultiInputActorCritic(observation_space, action_space, device))
        family = "cnn"
    elif observation_space.dtype == np.uint8 and len(observation_space.shape) == 3:
        memory_format = cpu_memory_format(device)
        encoder, family = ImageEncoder(observation_space.shape, 512, memory_format), "cnn"
    else:
        encoder = MLPEncoder(int(np.prod(observation_space.shape)), tuple(options.get("hidden_sizes", (64, 64))),
                             options.get("activation", "tanh"), options.get("ortho_init", True))
        family = "mlp"
    network = RecurrentActorCritic(encoder, action_space, kind, size or DEFAULT_SIZE[family],
                                   options.get("initial_log_std", 0.0), device, memory_format)
    if memory_format == torch.channels_last:
        network.to(memory_format=memory_format)
    return network

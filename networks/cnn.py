"""The CNN actor-critic for image observations: the Nature-DQN CNN (Atari's 84x84 frame stacks, any image of at
least 36x36), and a small conv stack for smaller images (grid worlds' 7x7 views)."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from networks.actor_critic import ActorCritic, layer_init, make_head

NATURE_MIN_SIZE = 36  # the Nature CNN's three convolutions (8/4, 4/2, 3/1) leave 1x1 of a 36x36 image


def nature_convs(channels: int) -> nn.Sequential:
    """Conv 32 8x8/4 -> 64 4x4/2 -> 64 3x3/1, ReLU each."""
    return nn.Sequential(
        layer_init(nn.Conv2d(channels, 32, 8, stride=4)), nn.ReLU(),
        layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
        layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
        nn.Flatten(),
    )


def small_convs(channels: int) -> nn.Sequential:
    """For images under 36x36, down to 1x1: conv 32 3x3 -> 64 3x3, stride 1, padded, ReLU each (every pixel of a
    grid world's view is a cell, so none is skipped)."""
    return nn.Sequential(
        layer_init(nn.Conv2d(channels, 32, 3, padding=1)), nn.ReLU(),
        layer_init(nn.Conv2d(32, 64, 3, padding=1)), nn.ReLU(),
        nn.Flatten(),
    )


def image_encoder(shape: tuple[int, ...], features: int) -> nn.Sequential:
    """Convolutions for a (C, H, W) image, the Nature CNN's from 36x36 up, then Linear -> ``features`` ReLU."""
    channels, height, width = shape
    convs = nature_convs(channels) if min(height, width) >= NATURE_MIN_SIZE else small_convs(channels)
    with torch.no_grad():
        flat = convs(torch.zeros(1, channels, height, width)).shape[1]
    return nn.Sequential(convs, layer_init(nn.Linear(flat, features)), nn.ReLU())


def scaled(images: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """uint8 images as the first convolution reads them: in ``memory_format``, scaled to [0, 1], and straight in
    the dtype it runs in (bfloat16 under --bf16's autocast): one pass over the frames instead of a float32 copy
    that autocast would then convert again."""
    device = images.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    return images.contiguous(memory_format=memory_format).to(dtype).div_(255.0)


def cpu_memory_format(device: torch.device | str) -> torch.memory_format:
    """channels_last (NHWC) on the CPU, which oneDNN convolves faster than NCHW (docs/performance.md)."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


class CNNActorCritic(ActorCritic):
    """Convolutions -> 512 ReLU, shared by the actor (gain 0.01) and critic (gain 1): Atari's Nature CNN, and
    main.py's network for image observations.

    Observations arrive as uint8 (a quarter of the memory of float32 in the rollout buffer) and are scaled by 1/255
    here. On the CPU the convolutions run channels_last; ``input_memory_format`` tells the rollout buffer to
    store frames that way.
    """

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.Space,
                 device: torch.device | str = "cpu", initial_log_std: float = 0.0) -> None:
        super().__init__()
        self.head = make_head(action_space, initial_log_std)
        self.trunk = image_encoder(observation_space.shape, 512)
        self.actor = layer_init(nn.Linear(512, self.head.num_outputs), std=0.01)
        self.critic = layer_init(nn.Linear(512, 1), std=1.0)
        self.input_memory_format = cpu_memory_format(device)
        self.to(device, memory_format=self.input_memory_format)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(scaled(obs, self.input_memory_format))
        return self.actor(hidden), self.critic(hidden).squeeze(-1)

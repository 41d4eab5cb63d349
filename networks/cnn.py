"""The Nature-DQN CNN actor-critic for stacks of 84x84 Atari frames."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from networks.actor_critic import ActorCritic, layer_init, make_head


class NatureCNNActorCritic(ActorCritic):
    """Conv 32 8x8/4 -> 64 4x4/2 -> 64 3x3/1 -> 512 ReLU, shared by the actor (gain 0.01) and critic (gain 1).

    Observations arrive as uint8 (a quarter of the memory of float32 in the rollout buffer) and are scaled by 1/255
    here. On the CPU the convolutions run channels_last (NHWC), which oneDNN computes faster than NCHW
    (docs/performance.md); ``input_memory_format`` tells the rollout buffer to store frames that way.
    """

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.Space,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        channels, height, width = observation_space.shape
        self.head = make_head(action_space)
        convs = nn.Sequential(
            layer_init(nn.Conv2d(channels, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = convs(torch.zeros(1, channels, height, width)).shape[1]
        self.trunk = nn.Sequential(convs, layer_init(nn.Linear(flat, 512)), nn.ReLU())
        self.actor = layer_init(nn.Linear(512, self.head.num_outputs), std=0.01)
        self.critic = layer_init(nn.Linear(512, 1), std=1.0)
        on_cpu = torch.device(device).type == "cpu"
        self.input_memory_format = torch.channels_last if on_cpu else torch.contiguous_format
        self.to(device, memory_format=self.input_memory_format)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Straight to the dtype the first convolution runs in (bfloat16 under --bf16's autocast): one pass over
        # the frames instead of a float32 copy that autocast would then convert again.
        device = obs.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        frames = obs.contiguous(memory_format=self.input_memory_format).to(dtype).div_(255.0)
        hidden = self.trunk(frames)
        return self.actor(hidden), self.critic(hidden).squeeze(-1)

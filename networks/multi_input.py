"""The actor-critic for a Dict or Tuple observation that holds images (a camera beside joint angles, a map beside
a compass): a CNN per image part, the other parts flattened, their features concatenated, then one shared layer
before the actor and critic heads (Stable-Baselines3's CombinedExtractor is the anchor).

It reads the packed uint8 row of wrappers/images.py's PackObservation: the rollout buffer stores one uint8 array
per step, as for Atari frames, and this network cuts it into its parts again (test_images.py)."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from networks.actor_critic import ActorCritic, layer_init, make_head
from networks.cnn import cpu_memory_format, image_encoder, scaled
from wrappers.images import packed_layout

IMAGE_FEATURES = 256  # per image part, as CombinedExtractor's cnn_output_dim
HIDDEN = 256


class MultiInputActorCritic(ActorCritic):
    def __init__(self, observation_space: gym.spaces.Dict | gym.spaces.Tuple, action_space: gym.Space,
                 device: torch.device | str = "cpu", initial_log_std: float = 0.0) -> None:
        """``observation_space``: the Dict or Tuple before packing, its images channels first."""
        super().__init__()
        self.layout = packed_layout(observation_space)
        self.head = make_head(action_space, initial_log_std)
        self.encoders = nn.ModuleDict({part.name: image_encoder(part.shape, IMAGE_FEATURES)
                                       for part in self.layout if part.image})
        features = sum(IMAGE_FEATURES if part.image else part.shape[0] for part in self.layout)
        self.trunk = nn.Sequential(layer_init(nn.Linear(features, HIDDEN)), nn.ReLU())
        self.actor = layer_init(nn.Linear(HIDDEN, self.head.num_outputs), std=0.01)
        self.critic = layer_init(nn.Linear(HIDDEN, 1), std=1.0)
        self.image_memory_format = cpu_memory_format(device)
        self.to(device)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The packed rows [N, bytes] cut into their parts: the flat parts viewed in place as float32 (their bytes
        start on a multiple of 4), each image through its CNN; concatenated in layout order."""
        obs = obs.contiguous()
        pieces = []
        for part in self.layout:
            piece = obs[:, part.offset:part.offset + part.nbytes]
            if part.image:
                images = piece.reshape(len(obs), *part.shape)
                pieces.append(self.encoders[part.name](scaled(images, self.image_memory_format)))
            else:
                pieces.append(piece.view(torch.float32))
        # float32 throughout (the CNNs' features are bfloat16 under --bf16; the trunk's autocast converts again)
        return torch.cat([piece.float() for piece in pieces], dim=-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(self.features(obs))
        return self.actor(hidden), self.critic(hidden).squeeze(-1)

"""Actor-critic networks: an MLP for flat observations, a CNN for images (the Nature CNN for Atari frames), and a
CNN per image beside flattened vectors for a Dict or Tuple that holds images."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from networks.actor_critic import ActorCritic, make_head
from networks.cnn import CNNActorCritic
from networks.mlp import MLPActorCritic
from networks.multi_input import MultiInputActorCritic
from networks.recurrent import RecurrentActorCritic, recurrent_actor_critic

__all__ = ["ActorCritic", "CNNActorCritic", "MLPActorCritic", "MultiInputActorCritic", "RecurrentActorCritic",
           "actor_critic_for", "make_head"]


def actor_critic_for(observation_space: gym.Space, action_space: gym.Space, options: dict,
                     device: torch.device | str) -> ActorCritic:
    """The network of either script, chosen once from the observation space as the network reads it
    (wrappers.classic.check_classic_env; main_atari.py's frames are a uint8 image): a Dict or Tuple (it holds images,
    else it would be flattened) gets a CNN per image; a uint8 image (C, H, W) the CNN; a flat Box the MLP, shaped by
    ``options`` (network_options: the CNNs take only --initial-log-std from them); with ``options["recurrent"]`` the
    same encoder, then an LSTM or GRU (networks/recurrent.py)."""
    options = dict(options)
    recurrent, size = options.pop("recurrent", None), options.pop("recurrent_size", None)
    if recurrent:
        return recurrent_actor_critic(observation_space, action_space, recurrent, size, options, device)
    if isinstance(observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        return MultiInputActorCritic(observation_space, action_space, device, options["initial_log_std"])
    if observation_space.dtype == np.uint8 and len(observation_space.shape) == 3:
        return CNNActorCritic(observation_space, action_space, device, options["initial_log_std"])
    return MLPActorCritic(observation_space, action_space, **options, device=device)

"""Partially observed classic envs, registered under rl-baselines3-zoo's names (rl_zoo3/wrappers.py's velocity
masks): the base env's observation multiplied by a 0/1 mask that hides its velocities, so a policy needs memory
(--recurrent) to act well. The observation keeps its shape; the hidden entries are always 0."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

# name: (base env, indices of the observation hidden)
NO_VELOCITY = {
    "CartPoleNoVel-v1": ("CartPole-v1", (1, 3)),
    "PendulumNoVel-v1": ("Pendulum-v1", (2,)),
    "MountainCarContinuousNoVel-v0": ("MountainCarContinuous-v0", (1,)),
    "LunarLanderNoVel-v3": ("LunarLander-v3", (2, 3, 5)),
    "LunarLanderContinuousNoVel-v3": ("LunarLanderContinuous-v3", (2, 3, 5)),
}


class MaskObservation(gym.ObservationWrapper):
    """The observation times a fixed 0/1 mask (0 at ``hidden``); the space as the base env's."""

    def __init__(self, env: gym.Env, hidden: tuple[int, ...]) -> None:
        super().__init__(env)
        self.mask = np.ones(env.observation_space.shape, env.observation_space.dtype)
        self.mask[list(hidden)] = 0

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation * self.mask


def make_no_velocity(base: str, hidden: tuple[int, ...], **kwargs) -> gym.Env:
    return MaskObservation(gym.make(base, **kwargs), hidden)


def register_no_velocity() -> None:
    """Registers the NO_VELOCITY envs (once); each keeps its base env's time limit, which gym.make of the base
    applies."""
    for name, (base, hidden) in NO_VELOCITY.items():
        if name not in gym.registry:
            gym.register(name, entry_point=make_no_velocity, kwargs={"base": base, "hidden": hidden})

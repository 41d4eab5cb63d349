"""Envs for test_distributed.py: one raises, one returns a NaN reward, in its 150th step, on rank 1 of a torchrun
run only."""

import os

import gymnasium as gym
import numpy as np


class CrashingOnRank1(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps == 150 and os.environ.get("RANK") == "1":
            raise RuntimeError("rank 1's env broke")
        return np.zeros(2, np.float32), 1.0, False, self.steps % 20 == 0, {}


gym.register("CrashingOnRank1-v0", entry_point=CrashingOnRank1)


class NonFiniteOnRank1(CrashingOnRank1):
    """A NaN reward in the 150th step, on rank 1 only."""

    def step(self, action):
        self.steps += 1
        reward = float("nan") if self.steps == 150 and os.environ.get("RANK") == "1" else 1.0
        return np.zeros(2, np.float32), reward, False, self.steps % 20 == 0, {}


gym.register("NonFiniteOnRank1-v0", entry_point=NonFiniteOnRank1)


class CrashingAlways(CrashingOnRank1):
    """Raises in its 50th step, in any process (ppo.tune's failed trials)."""

    def step(self, action):
        self.steps += 1
        if self.steps == 50:
            raise RuntimeError("this env always breaks")
        return np.zeros(2, np.float32), 1.0, False, self.steps % 20 == 0, {}


gym.register("CrashingAlways-v0", entry_point=CrashingAlways)

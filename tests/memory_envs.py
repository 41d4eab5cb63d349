"""An env for test_recurrent.py that needs memory: a cue (left or right) shown on the first step only, to be named
on the last. Observations: [cue, last step]; the cue is +1 or -1 at the first step and 0 after it. 4 steps an
episode; the last step pays +1 for the cue's side and -1 for the other. A policy without memory sees [0, 1] at
the last step whatever the cue was: it scores 0 on average; one that remembers the cue scores 1."""

import gymnasium as gym
import numpy as np

STEPS = 4


class CueMemory(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, steps: int = STEPS):
        self.steps, self.t, self.side = steps, 0, 0

    def observe(self) -> np.ndarray:
        cue = (1.0 if self.side else -1.0) if self.t == 0 else 0.0
        return np.array([cue, float(self.t == self.steps - 1)], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.side = 0, int(self.np_random.integers(2))
        return self.observe(), {}

    def step(self, action):
        last = self.t == self.steps - 1
        reward = (1.0 if int(action) == self.side else -1.0) if last else 0.0
        self.t += 1
        return self.observe() if not last else np.zeros(2, np.float32), reward, last, False, {}


gym.register("CueMemory-v0", entry_point=CueMemory)

"""Envs for test_images.py whose task is read from pixels: a cue drawn in an image (left or right), the action
must name its side. Each step shows a new cue; 8 steps an episode, +1 for each right answer: a random policy
scores 4 on average, one that reads the pixels 8."""

import gymnasium as gym
import numpy as np

STEPS = 8


class PixelCue(gym.Env):
    """An RGB image ``size`` x ``size``, channels last (or first with ``channels_first``; a gray plane (H, W)
    with ``plane``), black but for a bright block in its left or right half."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, size: int = 40, channels_first: bool = False, plane: bool = False, continuous: bool = False):
        self.size, self.channels_first, self.plane = size, channels_first, plane
        shape = (size, size) if plane else (3, size, size) if channels_first else (size, size, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        if continuous:  # right where the action is positive
            self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.side, self.steps = 0, 0

    def draw(self) -> np.ndarray:
        image = np.zeros((self.size, self.size), np.uint8)
        half, third = self.size // 2, max(self.size // 3, 1)
        columns = slice(0, half) if self.side == 0 else slice(self.size - half, self.size)
        image[third:self.size - third or None, columns] = 255
        if self.plane:
            return image
        rgb = np.stack([image, image // 2, image], axis=-1)
        return np.ascontiguousarray(np.moveaxis(rgb, -1, 0)) if self.channels_first else rgb

    def new_cue(self) -> np.ndarray:
        self.side = int(self.np_random.integers(2))
        return self.draw()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self.new_cue(), {}

    def answer(self, action) -> int:
        return int(np.asarray(action).reshape(-1)[0] > 0) if isinstance(self.action_space, gym.spaces.Box) \
            else int(action)

    def step(self, action):
        reward = float(self.answer(action) == self.side)
        self.steps += 1
        return self.new_cue(), reward, self.steps == STEPS, False, {}


class CueAndFlip(PixelCue):
    """A Dict of a 7x7 gray image (the cue) and a vector whose first entry flips the answer: the right action is
    the cue's side, or the other side where the flip is 1. Either part alone scores 4 on average."""

    def __init__(self, tuple_space: bool = False):
        super().__init__(size=7, plane=True)
        image = gym.spaces.Box(0, 255, (7, 7), np.uint8)
        vector = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.tuple_space = tuple_space
        self.observation_space = gym.spaces.Tuple((vector, image)) if tuple_space else \
            gym.spaces.Dict({"camera": image, "flip": vector})
        self.flip = 0

    def new_cue(self):
        image = super().new_cue()
        self.flip = int(self.np_random.integers(2))
        vector = np.array([self.flip, 0.5], np.float32)
        return (vector, image) if self.tuple_space else {"camera": image, "flip": vector}

    def step(self, action):
        reward = float(self.answer(action) == self.side ^ self.flip)
        self.steps += 1
        return self.new_cue(), reward, self.steps == STEPS, False, {}


class Inverted(gym.ObservationWrapper):
    """An --env-wrapper of the tests: the image's colours inverted (255 - pixel)."""

    def observation(self, observation):
        return 255 - observation


def not_a_wrapper(env):
    raise ValueError("this wrapper refuses every env")


gym.register("PixelCue-v0", entry_point=PixelCue)
gym.register("CueAndFlip-v0", entry_point=CueAndFlip)

"""Image observations for main.py: which observations are images, the preprocessing flags as Gymnasium wrappers,
a Dict or Tuple that holds images packed into one uint8 array, and the user's own wrappers (--env-wrapper).

An image is a uint8 Box of rank 3 with 1-4 channels, channels last (H, W, C: what Gymnasium's image envs give)
or first (C, H, W); a uint8 Box of rank 2 is an image of one channel. The network reads images channels first,
scaled to [0, 1] inside it, so observations stay uint8 from the env to the rollout buffer.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ppo.cli import UsageError

MAX_CHANNELS = 4


def image_layout(space: gym.Space) -> str | None:
    """'last' for (H, W, C), 'first' for (C, H, W), 'plane' for (H, W), None where ``space`` is not an image.
    Channels last wins where both ends could be channels (a 3×64×3 image is read as 3 rows of 64 RGB pixels)."""
    if not (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8):
        return None
    shape = space.shape
    if len(shape) == 2:
        return "plane"
    if len(shape) != 3:
        return None
    if 1 <= shape[-1] <= MAX_CHANNELS:
        return "last"
    return "first" if 1 <= shape[0] <= MAX_CHANNELS else None


def is_uint8_array(space: gym.Space) -> bool:
    """A uint8 Box of rank 2 or more: an image, or an array main.py cannot read as one."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) >= 2


def parts(space: gym.Space) -> list[tuple[str, gym.Space]]:
    """The top-level parts of a Dict (its key order) or Tuple ("0", "1", ...); [] for any other space."""
    if isinstance(space, gym.spaces.Dict):
        return list(space.spaces.items())
    if isinstance(space, gym.spaces.Tuple):
        return [(str(i), part) for i, part in enumerate(space.spaces)]
    return []


def holds_images(space: gym.Space) -> bool:
    """An image, or a Dict or Tuple with an image among its top-level parts."""
    return image_layout(space) is not None or any(image_layout(part) is not None for _, part in parts(space))


@dataclass(frozen=True)
class ImageOptions:
    """--frame-stack, --grayscale and --resize, saved with the run."""

    frame_stack: int = 1
    grayscale: bool = False
    resize: tuple[int, int] | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace | dict) -> ImageOptions:
        """From a run's flags (a saved run's ``args`` dict: runs saved before the flags get no preprocessing)."""
        saved = vars(args) if isinstance(args, argparse.Namespace) else args
        resize = saved.get("resize")
        return cls(saved.get("frame_stack", 1), saved.get("grayscale", False), tuple(resize) if resize else None)

    def any(self) -> bool:
        return self.frame_stack > 1 or self.grayscale or self.resize is not None


def transposed(env: gym.Env, axes: tuple[int, ...]) -> gym.Env:
    """The observation's axes permuted (Gymnasium has no transpose wrapper; TransformObservation with the new
    space is its way)."""
    space = env.observation_space
    new_space = gym.spaces.Box(np.transpose(space.low, axes), np.transpose(space.high, axes), dtype=space.dtype)
    return gym.wrappers.TransformObservation(env, lambda obs: np.ascontiguousarray(np.transpose(obs, axes)),
                                             new_space)


def channels_first(env: gym.Env) -> gym.Env:
    """An image observation as (C, H, W), whatever its layout."""
    layout = image_layout(env.observation_space)
    if layout == "plane":
        return gym.wrappers.ReshapeObservation(env, (1, *env.observation_space.shape))
    return transposed(env, (2, 0, 1)) if layout == "last" else env


def preprocess_image(env: gym.Env, options: ImageOptions) -> gym.Env:
    """An image env's observations as the CNN reads them: --resize and --grayscale (Gymnasium's wrappers, which
    take channels last), then channels first, then --frame-stack N stacked into N × C channels, oldest first."""
    layout = image_layout(env.observation_space)
    if layout == "first":
        env = transposed(env, (1, 2, 0))
    elif layout == "plane":
        env = gym.wrappers.ReshapeObservation(env, (*env.observation_space.shape, 1))
    if options.resize is not None:
        env = gym.wrappers.ResizeObservation(env, options.resize)
    if options.grayscale:
        env = gym.wrappers.GrayscaleObservation(env, keep_dim=True)
    env = channels_first(env)
    if options.frame_stack > 1:
        channels, height, width = env.observation_space.shape
        env = gym.wrappers.FrameStackObservation(env, options.frame_stack)
        env = gym.wrappers.ReshapeObservation(env, (options.frame_stack * channels, height, width))
    return env


def check_image_options(space: gym.Space, options: ImageOptions, env_id: str) -> None:
    """A UsageError for preprocessing the observation cannot take: any of the flags on an observation that is not
    one image, --grayscale on an image that is not RGB."""
    if not options.any():
        return
    flag = "--frame-stack" if options.frame_stack > 1 else "--grayscale" if options.grayscale else "--resize"
    layout = image_layout(space)
    if layout is None:
        what = "a Dict or Tuple (preprocess its images in an --env-wrapper)" if parts(space) else "not an image"
        raise UsageError(f"argument {flag}: {env_id!r} observes {space}, {what}; the image flags apply to an "
                         "observation that is one image")
    channels = 1 if layout == "plane" else space.shape[-1] if layout == "last" else space.shape[0]
    if options.grayscale and channels != 3:
        raise UsageError(f"argument --grayscale: {env_id!r} observes images of {channels} channel(s) "
                         f"{space.shape}; grayscale converts RGB images (3 channels)")


@dataclass(frozen=True)
class Part:
    """One top-level part of a packed observation: its bytes in the packed row and its shape as the network
    reads it (an image (C, H, W) uint8, anything else flattened to float32)."""

    name: str
    image: bool
    shape: tuple[int, ...]
    offset: int
    nbytes: int


def packed_layout(space: gym.Space) -> list[Part]:
    """The packed row of a Dict or Tuple with images: the flattened non-image parts first, as float32 (4-byte
    aligned, so the network can view them as float32 in place), then each image's bytes channels first. ``space``
    is the observation before packing, its images already channels first."""
    flat = [(name, part) for name, part in parts(space) if image_layout(part) is None]
    images = [(name, part) for name, part in parts(space) if image_layout(part) is not None]
    layout, offset = [], 0
    for name, part in flat:
        size = int(gym.spaces.flatdim(part))
        layout.append(Part(name, False, (size,), offset, 4 * size))
        offset += 4 * size
    for name, part in images:
        shape = tuple(int(n) for n in part.shape)
        layout.append(Part(name, True, shape, offset, int(np.prod(shape))))
        offset += int(np.prod(shape))
    return layout


def packed_size(layout: list[Part]) -> int:
    """Bytes of a packed row, rounded up to a multiple of 4 so that every row's float32 part stays aligned."""
    end = max(part.offset + part.nbytes for part in layout)
    return -(-end // 4) * 4


class PackObservation(gym.ObservationWrapper):
    """A Dict or Tuple that holds images, as one uint8 row (``packed_layout``): the rollout buffer stores it as it
    stores Atari frames, and the network cuts it into its parts again (networks/multi_input.py). Its images are
    first put channels first."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.unpacked_space = unpacked_space(env.observation_space)
        self.layout = packed_layout(self.unpacked_space)
        self.spaces = dict(parts(env.observation_space))  # the parts as the env gives them
        self.observation_space = gym.spaces.Box(0, 255, (packed_size(self.layout),), np.uint8)

    def observation(self, observation: dict | tuple) -> np.ndarray:
        row = np.zeros(self.observation_space.shape, np.uint8)
        values = observation if isinstance(observation, dict) else {str(i): value for i, value in
                                                                    enumerate(observation)}
        for part in self.layout:
            value = values[part.name]
            if part.image:
                value = image_channels_first(np.asarray(value, np.uint8), image_layout(self.spaces[part.name]))
                row[part.offset:part.offset + part.nbytes] = value.reshape(-1)
            else:
                flat = gym.spaces.flatten(self.spaces[part.name], value).astype(np.float32)
                row[part.offset:part.offset + part.nbytes] = flat.view(np.uint8)
        return row


def image_channels_first(image: np.ndarray, layout: str) -> np.ndarray:
    if layout == "plane":
        return image[None]
    return np.transpose(image, (2, 0, 1)) if layout == "last" else image


def unpacked_space(space: gym.Space) -> gym.Space:
    """A Dict or Tuple with its image parts channels first: what PackObservation packs and the network reads."""
    def first(part: gym.Space) -> gym.Space:
        layout = image_layout(part)
        if layout is None:
            return part
        shape = part.shape
        shape = (1, *shape) if layout == "plane" else (shape[2], shape[0], shape[1]) if layout == "last" else shape
        return gym.spaces.Box(0, 255, shape, np.uint8)

    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({name: first(part) for name, part in space.spaces.items()})
    return gym.spaces.Tuple([first(part) for part in space.spaces])


def import_wrapper(path: str) -> Callable[[gym.Env], gym.Env]:
    """``module:Class`` (or ``module:function``) of --env-wrapper, imported from the import path or the current
    directory; a UsageError where it cannot be."""
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise UsageError(f"argument --env-wrapper: {path!r} is not module:Class")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        wrapper = getattr(importlib.import_module(module_name), name)
    except Exception as error:  # the user's module: any error in it is a reason it cannot be used
        raise UsageError(f"argument --env-wrapper: cannot import {path!r}: {type(error).__name__}: {error}"
                         ) from None
    if not callable(wrapper):
        raise UsageError(f"argument --env-wrapper: {path!r} is not a class or function that wraps an env")
    return wrapper


def apply_user_wrappers(env: gym.Env, paths: list[str]) -> gym.Env:
    """--env-wrapper module:Class ...: each called with the env, in the order given (the first wraps the env
    itself), before this trainer's own wrappers; a wrapper that fails is a UsageError naming it."""
    for path in paths:
        wrapper = import_wrapper(path)
        try:
            env = wrapper(env)
        except Exception as error:
            raise UsageError(f"argument --env-wrapper: {path!r} could not wrap {env}: {type(error).__name__}: "
                             f"{error}") from None
        if not isinstance(env, gym.Env):
            raise UsageError(f"argument --env-wrapper: {path!r} returned {type(env).__name__}, not a gymnasium Env")
    return env

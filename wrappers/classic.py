"""Envs for main.py: classic control, Box2D, MuJoCo, image envs (CarRacing) and the user's own."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from ppo.cli import UsageError
from wrappers.images import (
    ImageOptions,
    PackObservation,
    apply_user_wrappers,
    check_image_options,
    holds_images,
    image_layout,
    is_uint8_array,
    parts,
    preprocess_image,
    unpacked_space,
)
from wrappers.vector import is_atari, lookup_spec, make_vector_env, with_video

NO_IMAGE_OPTIONS = ImageOptions()


def check_classic_env(env_id: str, capture_video: bool = False, env_kwargs: dict | None = None,
                      env_wrappers: list[str] | None = None, images: ImageOptions = NO_IMAGE_OPTIONS
                      ) -> tuple[gym.Space, gym.Space]:
    """The observation space the network reads (a flat Box, an image (C, H, W), or a Dict or Tuple with images,
    their images channels first) and the action space of ``env_id`` as main.py makes it (with the user's
    wrappers and the image preprocessing), if main.py can train on it (and, with ``capture_video``, record it);
    otherwise a UsageError.

    Makes (and closes) one env, since only a real env knows its spaces; nothing is written to disk.
    """
    spec = lookup_spec(env_id)
    if is_atari(spec):
        raise UsageError(f"argument --environment-id: {env_id!r} is an Atari game: use main_atari.py for Atari")
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except TypeError as error:
        if not env_kwargs:
            raise
        raise UsageError(f"argument --env-kwargs: {env_id!r} does not take {env_kwargs}: {error}") from None
    except gym.error.DependencyNotInstalled as error:
        raise UsageError(f"argument --environment-id: {env_id!r} needs a package that is not installed: {error}"
                         ) from None
    try:
        env = apply_user_wrappers(env, list(env_wrappers or []))
        observation_space, action_space = env.observation_space, env.action_space
        render_modes = env.metadata.get("render_modes", [])
        check_observation(observation_space, env_id)
        check_image_options(observation_space, images, env_id)
        # The network reads a Dict or Tuple with images part by part (the buffer stores it packed).
        network_space = unpacked_space(observation_space) if image_layout(observation_space) is None and \
            holds_images(observation_space) else observation_for_network(env, images).observation_space
    finally:
        env.close()
    if capture_video and "rgb_array" not in render_modes:
        raise UsageError(f"argument --capture-video: {env_id!r} cannot render frames to record (its render_modes: "
                         f"{render_modes}; a video needs 'rgb_array')")
    if not supported_actions(action_space):
        raise UsageError(f"argument --environment-id: {env_id!r} has action space {action_space}; main.py handles "
                         "Discrete, and 1-D Box, MultiDiscrete (starting at 0) and MultiBinary actions")
    return network_space, action_space


def check_observation(space: gym.Space, env_id: str) -> None:
    """A UsageError for an observation main.py cannot read: a uint8 array that is no image of 1-4 channels, a
    space Gymnasium cannot flatten, or a Dict or Tuple whose image parts are nested deeper than its top level."""
    if is_uint8_array(space) and image_layout(space) is None:
        raise UsageError(f"argument --environment-id: {env_id!r} observes {space}, a uint8 array main.py does not "
                         "read as an image: images are (H, W, C) or (C, H, W) with 1-4 channels, or (H, W)")
    for _, part in parts(space):
        if is_uint8_array(part) and image_layout(part) is None:
            raise UsageError(f"argument --environment-id: {env_id!r} observes {space}, whose part {part} is a uint8 "
                             "array main.py does not read as an image (1-4 channels)")
    if not flattenable(space):
        raise UsageError(f"argument --environment-id: {env_id!r} has observation space {space}; "
                         "main.py reads images (uint8 Boxes of 1-4 channels) and flattens Box, Discrete, "
                         "MultiBinary and MultiDiscrete observations, and Dict and Tuple spaces of them")


def supported_actions(space: gym.Space) -> bool:
    """The action spaces networks/heads.py has a distribution for (actions drawn from 0, as the heads draw them)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start) == 0
    if isinstance(space, gym.spaces.MultiDiscrete):
        return len(space.shape) == 1 and not np.any(space.start)
    return isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary) and len(space.shape) == 1


def flattenable(space: gym.Space) -> bool:
    """Spaces main.py learns from, flattened by Gymnasium's ``flatten`` in a fixed order: a Box of any shape
    (reshaped), Discrete (one-hot), MultiBinary (as it is), MultiDiscrete (one-hot per part), and Dict (keys in
    sorted order) and Tuple spaces of these."""
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        return all(map(flattenable, space.values() if isinstance(space, gym.spaces.Dict) else space))
    return isinstance(space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiBinary | gym.spaces.MultiDiscrete)


def observation_for_network(env: gym.Env, images: ImageOptions = NO_IMAGE_OPTIONS) -> gym.Env:
    """The observation as the network reads it and the rollout buffer stores it: an image preprocessed and
    channels first; a Dict or Tuple with images packed into one uint8 row; anything else flattened into one Box.
    Decided once per env from its observation space."""
    space = env.observation_space
    if image_layout(space) is not None:
        return preprocess_image(env, images)
    if holds_images(space):
        return PackObservation(env)
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        return gym.wrappers.FlattenObservation(env)  # into the flat Box check_classic_env reports
    return env


def make_classic_env(env_id: str, video_dir: str | None = None, every_episode: bool = False,
                     env_kwargs: dict | None = None, env_wrappers: list[str] | None = None,
                     images: ImageOptions = NO_IMAGE_OPTIONS) -> gym.Env:
    """One env: the user's wrappers (--env-wrapper) first, then full-episode statistics, the observation as the
    network reads it, actions clipped to the bounds at the env (the learner keeps the raw sample and its
    log-probability), and optionally video (``every_episode`` or Gymnasium's schedule)."""
    # render_mode only where frames are recorded: many hand-written envs take no such argument.
    env = gym.make(env_id, **(env_kwargs or {}), **({"render_mode": "rgb_array"} if video_dir else {}))
    env = apply_user_wrappers(env, list(env_wrappers or []))
    if video_dir:
        env = with_video(env, video_dir, every_episode)
    env = observation_for_network(gym.wrappers.RecordEpisodeStatistics(env), images)
    if isinstance(env.action_space, gym.spaces.Box):
        env = gym.wrappers.ClipAction(env)
    return env


def has_native_vector_env(env_id: str) -> bool:
    return lookup_spec(env_id).vector_entry_point is not None


def check_vec_backend(env_id: str, backend: str, env_wrappers: list[str] | None = None,
                      images: ImageOptions = NO_IMAGE_OPTIONS) -> None:
    if backend == "native" and not has_native_vector_env(env_id):
        raise UsageError(f"argument --vec-backend: {env_id!r} has no native vectorized implementation; "
                         "use sync or async")
    if backend == "native" and (env_wrappers or images.any()):
        raise UsageError("argument --vec-backend: native vector envs take no --env-wrapper, --frame-stack, "
                         "--grayscale or --resize (they wrap single envs); use sync or async")


def make_native_vector_env(env_id: str, num_envs: int, env_kwargs: dict | None = None) -> VectorEnv:
    """Gymnasium's own vectorized implementation (one NumPy step for all envs). It resets a finished env on the
    next step (NEXT_STEP), which the training loop handles; statistics come from the vector-level wrapper."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {}))
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    if isinstance(envs.single_action_space, gym.spaces.Box):
        envs = gym.wrappers.vector.ClipAction(envs)
    return envs


def make_classic_envs(env_id: str, num_envs: int, video_dir: str | None = None, backend: str = "sync",
                      env_kwargs: dict | None = None, env_wrappers: list[str] | None = None,
                      images: ImageOptions = NO_IMAGE_OPTIONS) -> VectorEnv:
    """``backend`` auto: the native vector env where there is one, from 8 envs on, and neither video is recorded
    (videos need the per-env render) nor ``env_kwargs``, wrappers or image preprocessing given (they apply to the
    single env); else sync. The native env pays from about 8 envs on (docs/performance.md)."""
    if backend == "auto":
        native = has_native_vector_env(env_id) and num_envs >= 8 and not video_dir and not env_kwargs \
            and not env_wrappers and not images.any()
        backend = "native" if native else "sync"
    if backend == "native":
        return make_native_vector_env(env_id, num_envs, env_kwargs)
    return make_vector_env(lambda video: make_classic_env(env_id, video, env_kwargs=env_kwargs,
                                                          env_wrappers=env_wrappers, images=images),
                           num_envs, video_dir, backend)

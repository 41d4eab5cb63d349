"""Envs with a flat observation (classic control, Box2D, ...) for main.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from ppo.cli import UsageError
from wrappers.vector import is_atari, lookup_spec, make_vector_env, with_video


def check_classic_env(env_id: str, capture_video: bool = False, env_kwargs: dict | None = None
                      ) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of ``env_id`` if main.py can train on it (and, with ``capture_video``, record
    it); otherwise a UsageError.

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
    observation_space, action_space = env.observation_space, env.action_space
    render_modes = env.metadata.get("render_modes", [])
    env.close()
    if capture_video and "rgb_array" not in render_modes:
        raise UsageError(f"argument --capture-video: {env_id!r} cannot render frames to record (its render_modes: "
                         f"{render_modes}; a video needs 'rgb_array')")

    if is_image(observation_space):
        raise UsageError(f"argument --environment-id: {env_id!r} observes images {observation_space}: use "
                         "main_atari.py for Atari games; main.py learns from observations it can flatten")
    if not flattenable(observation_space):
        raise UsageError(f"argument --environment-id: {env_id!r} has observation space {observation_space}; "
                         "main.py flattens Box, Discrete, MultiBinary and MultiDiscrete observations, and Dict and "
                         "Tuple spaces of them")
    if not supported_actions(action_space):
        raise UsageError(f"argument --environment-id: {env_id!r} has action space {action_space}; main.py handles "
                         "Discrete, and 1-D Box, MultiDiscrete (starting at 0) and MultiBinary actions")
    return gym.spaces.flatten_space(observation_space), action_space


def supported_actions(space: gym.Space) -> bool:
    """The action spaces networks/heads.py has a distribution for (actions drawn from 0, as the heads draw them)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start) == 0
    if isinstance(space, gym.spaces.MultiDiscrete):
        return len(space.shape) == 1 and not np.any(space.start)
    return isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary) and len(space.shape) == 1


def is_image(space: gym.Space) -> bool:
    """Frames, as Atari envs give them: uint8 arrays of 2 or 3 dimensions."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


def flattenable(space: gym.Space) -> bool:
    """Spaces main.py learns from, flattened by Gymnasium's ``flatten`` in a fixed order: a Box of any shape
    (reshaped), Discrete (one-hot), MultiBinary (as it is), MultiDiscrete (one-hot per part), and Dict (keys in
    sorted order) and Tuple spaces of these."""
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        return all(map(flattenable, space.values() if isinstance(space, gym.spaces.Dict) else space))
    return isinstance(space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiBinary | gym.spaces.MultiDiscrete)


def make_classic_env(env_id: str, video_dir: str | None = None, every_episode: bool = False,
                     env_kwargs: dict | None = None) -> gym.Env:
    """One env: full-episode statistics, actions clipped to the bounds at the env (the learner keeps the raw
    sample and its log-probability), and optionally video (``every_episode`` or Gymnasium's schedule)."""
    # render_mode only where frames are recorded: many hand-written envs take no such argument.
    env = gym.make(env_id, **(env_kwargs or {}), **({"render_mode": "rgb_array"} if video_dir else {}))
    if video_dir:
        env = with_video(env, video_dir, every_episode)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if not (isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) == 1):
        env = gym.wrappers.FlattenObservation(env)  # into the flat Box check_classic_env reports
    if isinstance(env.action_space, gym.spaces.Box):
        env = gym.wrappers.ClipAction(env)
    return env


def has_native_vector_env(env_id: str) -> bool:
    return lookup_spec(env_id).vector_entry_point is not None


def check_vec_backend(env_id: str, backend: str) -> None:
    if backend == "native" and not has_native_vector_env(env_id):
        raise UsageError(f"argument --vec-backend: {env_id!r} has no native vectorized implementation; "
                         "use sync or async")


def make_native_vector_env(env_id: str, num_envs: int, env_kwargs: dict | None = None) -> VectorEnv:
    """Gymnasium's own vectorized implementation (one NumPy step for all envs). It resets a finished env on the
    next step (NEXT_STEP), which the training loop handles; statistics come from the vector-level wrapper."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {}))
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    if isinstance(envs.single_action_space, gym.spaces.Box):
        envs = gym.wrappers.vector.ClipAction(envs)
    return envs


def make_classic_envs(env_id: str, num_envs: int, video_dir: str | None = None, backend: str = "sync",
                      env_kwargs: dict | None = None) -> VectorEnv:
    """``backend`` auto: the native vector env where there is one, from 8 envs on, and neither video is recorded
    (videos need the per-env render) nor ``env_kwargs`` given (they are the single env's); else sync. The native
    env pays from about 8 envs on (docs/performance.md)."""
    if backend == "auto":
        native = has_native_vector_env(env_id) and num_envs >= 8 and not video_dir and not env_kwargs
        backend = "native" if native else "sync"
    if backend == "native":
        return make_native_vector_env(env_id, num_envs, env_kwargs)
    return make_vector_env(lambda video: make_classic_env(env_id, video, env_kwargs=env_kwargs), num_envs,
                           video_dir, backend)

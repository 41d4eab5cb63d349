"""Env construction shared by both scripts: id lookup with clear errors, and the vector env the loop expects."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from ppo.cli import UsageError
from wrappers.novel import register_no_velocity

REGISTRY_HINT = "python -c 'import gymnasium; gymnasium.pprint_registry()' lists the ids"


def register_atari() -> None:
    """Make the ALE/... ids known to gymnasium (ale-py ships the ROMs; nothing is downloaded)."""
    import ale_py

    gym.register_envs(ale_py)


def import_env_module(env_id: str) -> str:
    """For Gymnasium's ``module:Id`` form (what ``gym.make`` accepts): imports the module, which registers its envs,
    and returns the id. The module is looked for on the import path and in the current directory, where a user's
    own env file usually is."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        importlib.import_module(module)
    except Exception as error:  # the user's module: any error in it is a reason it cannot be used
        raise UsageError(f"argument --environment-id: cannot import module {module!r} of {env_id!r}: "
                         f"{type(error).__name__}: {error}") from None
    return name


def lookup_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec for ``env_id`` (or ``module:Id``) or a UsageError naming the flag, the value and
    gymnasium's reason."""
    register_atari()
    register_no_velocity()
    name = import_env_module(env_id)
    try:
        return gym.spec(name)
    except gym.error.Error as error:
        raise UsageError(f"argument --environment-id: unknown environment {env_id!r}: {error} ({REGISTRY_HINT})"
                         ) from None


def is_atari(spec: gym.envs.registration.EnvSpec) -> bool:
    return "ale_py" in str(spec.entry_point)


def make_vector_env(make_env: Callable[[str | None], gym.Env], num_envs: int, video_dir: str | None = None,
                    backend: str = "sync") -> VectorEnv:
    """``num_envs`` envs from ``make_env(video_dir)``; only env 0 records video. Seeds are given at reset (env i:
    seed + i).

    The vector env runs in SAME_STEP autoreset mode: a finished env is reset within the same step and its last
    observation is handed over as ``info['final_obs']``, so a truncation can be bootstrapped from it and no
    reset step (whose action NEXT_STEP mode ignores) ever reaches the learner."""
    thunks = [(lambda i=i: make_env(video_dir if i == 0 else None)) for i in range(num_envs)]
    if backend == "async":
        return AsyncVectorEnv(thunks, autoreset_mode=AutoresetMode.SAME_STEP, context="fork")
    return SyncVectorEnv(thunks, autoreset_mode=AutoresetMode.SAME_STEP)


def with_video(env: gym.Env, video_dir: str, every_episode: bool = False) -> gym.Env:
    """Record episodes of this env as mp4 files: all of them, or Gymnasium's cubic schedule (episodes 0, 1, 8,
    27, ..., 1000, 2000, ...) that keeps a long training run's videos few."""
    # Frames are drawn off-screen (rgb_array): without a display, SDL would only complain about XDG_RUNTIME_DIR.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return gym.wrappers.RecordVideo(env, video_dir, episode_trigger=(lambda _: True) if every_episode else None,
                                   disable_logger=True)

"""The three ways main_atari.py can step Atari games, and the choice between them (--env-backend): the same
preprocessing (wrappers/atari.py says which) on Gymnasium's wrappers, ale-py's C++ vector env or EnvPool's."""

from __future__ import annotations

from gymnasium.vector import VectorEnv

from ppo.cli import UsageError
from wrappers.atari import make_atari_env
from wrappers.vector import make_vector_env


def choose_env_backend(requested: str, capture_video: bool, vec_backend: str) -> str:
    """``--env-backend auto``: ale-py's threaded vector env, the fastest that needs nothing beyond
    requirements.txt (docs/performance.md), unless what was asked for needs the gymnasium backend: videos, or
    subprocess stepping. Any other choice is checked against those flags."""
    if requested == "auto":
        needs_gymnasium = capture_video or vec_backend != "sync" or not has_ale_vector_env()
        return "gymnasium" if needs_gymnasium else "ale-vector"
    if requested != "gymnasium" and capture_video:
        raise UsageError("argument --capture-video: videos are recorded by the gymnasium backend only "
                         f"(drop --env-backend {requested})")
    if requested != "gymnasium" and vec_backend != "sync":
        raise UsageError(f"argument --vec-backend: {vec_backend} stepping is for the gymnasium backend; "
                         f"--env-backend {requested} steps its envs in its own threads (drop one of the two)")
    return requested


def has_ale_vector_env() -> bool:
    try:
        import ale_py.vector_env  # noqa: F401
    except ImportError:  # ale-py builds without it (older versions, some platforms)
        return False
    return True


def make_atari_envs(env_id: str, num_envs: int, video_dir: str | None = None, backend: str = "sync",
                    env_backend: str = "gymnasium", noop_max: int = 30, frame_stack: int = 4) -> VectorEnv:
    """``num_envs`` games on ``env_backend``; each starts with 0 to ``noop_max`` - 1 random no-op frames, and
    observes its last ``frame_stack`` frames."""
    if env_backend == "ale-vector":
        from wrappers.ale_vector import AleVectorAtari

        return AleVectorAtari(env_id, num_envs, noop_max, frame_stack)
    if env_backend == "envpool":
        from wrappers.envpool_atari import EnvPoolAtari

        return EnvPoolAtari(env_id, num_envs, noop_max, frame_stack)
    return make_vector_env(lambda video: make_atari_env(env_id, video, noop_max, frame_stack=frame_stack), num_envs,
                           video_dir, backend)


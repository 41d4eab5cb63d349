"""EnvPool's C++ Atari envs behind Gymnasium's vector API, for ``main_atari.py --env-backend envpool``.

EnvPool steps all envs in C++ threads and preprocesses there, with the semantics of wrappers/atari.py: no-ops on
a game's reset (1 to 30 here, 0 to 29 on the other backends), 4-frame skip with max-pooling, 84×84 gray
(INTER_AREA), rewards clipped for the learner, sticky actions (0.25) for v5 ids. EnvPool's own episodic life
starts a new life with random no-ops and keeps the old frames in its stack, and its FIRE on reset lasts one
frame, so this class starts games and lives and stacks frames as wrappers/ale_vector.py does (NewLifeStacks: a
step of FIRE after a game's reset; the restart step after a lost life presses FIRE, or NOOP; each starts the
stack again from 4 copies of its frame). EnvPool resets a finished game on its *next* step (NEXT_STEP; the loop
drops that step) and reports the raw reward in ``info``; this class turns those into the same full-game
``info["episode"]`` statistics (return = unclipped score of the whole game; length in emulator frames) that
Gymnasium's RecordEpisodeStatistics gives the gymnasium backend.

EnvPool seeds at construction, so the pool is made at the first ``reset(seed=...)``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from ppo.cli import UsageError
from wrappers.atari import NewLifeStacks
from wrappers.vector import register_atari

FRAME_SKIP = 4
INSTALL_HINT = "pip install -r requirements-envpool.txt"


def envpool_task(env_id: str) -> tuple[str, float]:
    """EnvPool's task id and sticky-action probability for a Gymnasium ALE id."""
    if env_id.startswith("ALE/") and env_id.endswith("-v5"):
        return env_id[len("ALE/"):], 0.25
    if env_id.endswith("NoFrameskip-v4"):
        return env_id[: -len("NoFrameskip-v4")] + "-v5", 0.0
    raise UsageError(f"argument --env-backend: EnvPool has no twin of {env_id!r} (ALE/<Game>-v5 and "
                     "<Game>NoFrameskip-v4 ids only)")


def check_envpool(env_id: str) -> None:
    try:
        import envpool
    except ImportError:
        raise UsageError(f"argument --env-backend: envpool is not installed ({INSTALL_HINT})") from None
    task, _ = envpool_task(env_id)
    if task not in envpool.list_all_envs():
        raise UsageError(f"argument --env-backend: EnvPool has no Atari game {task!r}")


class EnvPoolAtari(VectorEnv):
    def __init__(self, env_id: str, num_envs: int, noop_max: int = 30, frame_stack: int = 4) -> None:
        import envpool

        self.task, self.sticky = envpool_task(env_id)
        self.noop_max = noop_max
        self.num_envs = num_envs
        self.pool: Any = None
        spec = envpool.make_spec(self.task)
        self.single_observation_space = gym.spaces.Box(0, 255, (frame_stack, 84, 84), np.uint8)
        self.single_action_space = gym.spaces.Discrete(int(spec.action_space.n))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}
        self.game_return = np.zeros(num_envs, np.float64)
        self.lives = np.zeros(num_envs, np.int64)
        register_atari()
        probe = gym.make(env_id)  # EnvPool's spec names no actions: the ALE env of the same game does
        self.stacks = NewLifeStacks(num_envs, probe.unwrapped.get_action_meanings(), frame_stack)
        probe.close()
        self.game_over = np.zeros(num_envs, bool)  # on the last step: the pool resets these envs on this one

    def make_pool(self, seed: int) -> None:
        import envpool

        if self.pool is not None:
            self.pool.close()
        self.pool = envpool.make(
            self.task, env_type="gymnasium", num_envs=self.num_envs, seed=seed, episodic_life=False,
            reward_clip=True, noop_max=self.noop_max, frame_skip=FRAME_SKIP, stack_num=1, img_height=84, img_width=84,
            gray_scale=True, use_fire_reset=False, repeat_action_probability=self.sticky, full_action_space=False,
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if self.pool is None or seed is not None:
            self.make_pool(0 if seed is None else seed)
        self.game_return[:] = 0
        stacks, info = self.stacks.reset(self.pool.reset, self.pool.step)
        self.lives[:] = info["lives"]
        self.game_over[:] = False
        return stacks, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, game_ended, truncated, raw = self.pool.step(self.stacks.actions(actions))
        self.game_return += raw["reward"]
        game_over = game_ended | truncated
        lost_life = (raw["lives"] < self.lives) & ~game_over
        self.lives[:] = raw["lives"]
        terminated = game_ended | lost_life
        info: dict[str, Any] = {}
        if game_over.any():
            info["episode"] = {"r": self.game_return.copy(), "l": raw["elapsed_step"] * FRAME_SKIP}
            info["_episode"] = game_over
            self.game_return[game_over] = 0
        obs, ended = self.stacks.step(obs, terminated | truncated, self.game_over)
        self.game_over = game_over
        return obs, reward.astype(np.float32), ended & ~truncated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        if self.pool is not None:
            self.pool.close()

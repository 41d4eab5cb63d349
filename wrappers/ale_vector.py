"""ale-py's own C++ vector env (ale_py.vector_env.AtariVectorEnv) for ``main_atari.py --env-backend ale-vector``.

AtariVectorEnv steps all envs in C++ threads and preprocesses there: up to 29 no-ops on reset, 4-frame skip with
max-pooling, 84×84 gray, the id's sticky actions. It ships inside ale-py, so it needs nothing beyond
requirements.txt. Its own ``episodic_life`` resets the whole game on a lost life, its FIRE on reset lasts one frame
(too short to launch Breakout's ball) and its frame stack starts a game with black frames, so none of them is used;
this class gives wrappers/atari.py's semantics instead:

- episodic life: ale-py's ``life_loss_info`` ends the learner's episode on a lost life and the game goes on; the
  env's next step, which the loop drops from the update like any NEXT_STEP reset step, presses FIRE (NOOP in
  games without FIRE) in place of the learner's action, as EpisodicLife does on the gymnasium backend;
- FireOnReset's step of FIRE after a game's reset, and the frame stack of wrappers/atari.py: 4 copies of a life's
  first frame, then one new frame a step (NewLifeStacks);
- rewards clipped to their sign for the learner; the unclipped score summed over the whole game, all lives, and
  logged with the game's length in emulator frames as ``info["episode"]``, the statistics Gymnasium's
  RecordEpisodeStatistics gives the gymnasium backend. A game's end is recognised on the env's next step, when
  its frame count starts again (a lost life and a game over look alike when they happen), so a game is logged
  one step after its last one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from wrappers.atari import NewLifeStacks
from wrappers.vector import lookup_spec


class AleVectorAtari(VectorEnv):
    def __init__(self, env_id: str, num_envs: int, noop_max: int = 30, frame_stack: int = 4) -> None:
        from ale_py.vector_env import AtariVectorEnv

        kwargs = lookup_spec(env_id).kwargs
        self.env = AtariVectorEnv(
            kwargs["game"], num_envs, frameskip=4, noop_max=noop_max, stack_num=1, img_height=84, img_width=84,
            grayscale=True, maxpool=True, use_fire_reset=False, episodic_life=False, life_loss_info=True,
            reward_clipping=False, repeat_action_probability=kwargs.get("repeat_action_probability", 0.0),
            full_action_space=kwargs.get("full_action_space", False),
            max_num_frames_per_episode=kwargs.get("max_num_frames_per_episode", 108_000),
            autoreset_mode=AutoresetMode.NEXT_STEP,
        )
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(0, 255, (frame_stack, 84, 84), np.uint8)
        self.single_action_space = self.env.single_action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = self.env.action_space
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}
        meanings = [action.name for action in self.env.ale.get_action_set()]
        self.stacks = NewLifeStacks(num_envs, meanings, frame_stack)
        self.game_return = np.zeros(num_envs, np.float64)
        self.frames = np.zeros(num_envs, np.int64)  # emulator frames of each env's game so far

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        stacks, info = self.stacks.reset(lambda: self.env.reset(seed=seed), self.env.step)
        self.game_return[:] = 0
        self.frames[:] = info["episode_frame_number"]
        return stacks, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, raw = self.env.step(self.stacks.actions(actions))
        frames = raw["episode_frame_number"]
        info: dict[str, Any] = {}
        new_game = self.stacks.restart & (frames <= self.frames)  # the env was reset: the game before it is over
        if new_game.any():
            info["episode"] = {"r": self.game_return.copy(), "l": self.frames.copy()}
            info["_episode"] = new_game
            self.game_return[new_game] = 0
        self.game_return += reward
        self.frames[:] = frames
        obs, ended = self.stacks.step(obs, terminated | truncated, new_game)
        return obs, np.sign(reward).astype(np.float32), ended & ~truncated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()

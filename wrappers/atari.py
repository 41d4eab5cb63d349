"""ALE Atari games for main_atari.py, with the standard preprocessing of the Nature DQN / PPO papers.

Per env, outermost last:
  RecordEpisodeStatistics   the full game: all lives, unclipped score (what charts/episodic_return shows)
  AtariPreprocessing        up to 30 no-ops on reset; repeat each action 4 frames, max-pool the last two; 84x84 gray
  EpisodicLife              a lost life ends the learner's episode; the game goes on and resets only at game over
  FireOnReset               press FIRE after each reset, for games that wait for it
  ClipReward                rewards clipped to [-1, 1] (ALE rewards are integers: their sign)
  FrameStackObservation     the last 4 frames: observations (4, 84, 84) uint8

The base env is made with frameskip=1 so that frames are skipped once, in AtariPreprocessing (ALE/...-v5 ids
would otherwise skip 4 themselves); v5's sticky actions (repeat_action_probability 0.25) are kept. Resizing happens
inside AtariPreprocessing, before EpisodicLife and FIRE, which only look at lives and actions, not pixels.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from ppo.cli import UsageError
from wrappers.vector import is_atari, lookup_spec, register_atari, with_video

GAMES_HINT = ("python -c \"import gymnasium, ale_py; gymnasium.register_envs(ale_py); "
              "print([i for i in gymnasium.registry if i.startswith('ALE/')])\" lists the games")


class EpisodicLife(gym.Wrapper):
    """A lost life ends the learner's episode (terminated=True) without resetting the game.

    The following reset() only takes a no-op step to move on from the lost life; the emulator is really reset
    only when the game is over, or when reset is asked for with a seed (a new run, not an autoreset).
    Gymnasium has no twin of this wrapper.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        if self.game_over or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireOnReset(gym.Wrapper):
    """Presses FIRE after every reset, for games (Breakout, ...) that wait for it before play starts."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        assert needs_fire(env)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


class FireAfterLifeLoss(gym.Wrapper):
    """For evaluation on whole games: presses FIRE once after a lost life, as FireOnReset did after every life
    the agent was trained on, so a game that waits for FIRE does not stall until its time limit."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        lives = self.env.unwrapped.ale.lives()
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated) and self.env.unwrapped.ale.lives() < lives:
            obs, fire_reward, terminated, truncated, info = self.env.step(1)
            reward += fire_reward
        return obs, reward, terminated, truncated, info


def needs_fire(env: gym.Env) -> bool:
    return fire_is_second(env.unwrapped.get_action_meanings())


def fire_is_second(action_meanings: list[str]) -> bool:
    """Games that wait for FIRE before play starts: their second action is FIRE."""
    return len(action_meanings) >= 3 and action_meanings[1] == "FIRE"


def check_atari_env(env_id: str) -> None:
    """A UsageError unless ``env_id`` is an ALE game with image observations. Makes no env."""
    try:
        spec = lookup_spec(env_id)
    except UsageError as error:
        raise UsageError(f"{error}; for Atari, {GAMES_HINT}") from None
    if not is_atari(spec):
        raise UsageError(f"argument --environment-id: {env_id!r} is not an Atari game: use main.py for it")
    if spec.kwargs.get("obs_type", "rgb") != "rgb":
        raise UsageError(f"argument --environment-id: {env_id!r} observes {spec.kwargs['obs_type']!r}, not the "
                         "screen image main_atari.py learns from; use the id without '-ram'")


def make_atari_env(env_id: str, video_dir: str | None = None, noop_max: int = 30, evaluation: bool = False,
                   every_episode: bool = False) -> gym.Env:
    """The training env; with ``evaluation``, whole games with their real score: no EpisodicLife, no ClipReward
    (and FIRE after a lost life in games that need it). ``every_episode`` records every episode's video."""
    register_atari()
    env = gym.make(env_id, frameskip=1, render_mode="rgb_array" if video_dir else None)
    if video_dir:
        env = with_video(env, video_dir, every_episode)  # whole games at the original resolution
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=84,
                                          terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    if not evaluation:
        env = EpisodicLife(env)
    if needs_fire(env):
        env = FireOnReset(env)
        if evaluation:
            env = FireAfterLifeLoss(env)
    if not evaluation:
        env = gym.wrappers.ClipReward(env, -1, 1)
    return gym.wrappers.FrameStackObservation(env, 4)

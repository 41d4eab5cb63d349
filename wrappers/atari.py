"""ALE Atari games for main_atari.py, with the standard preprocessing of the Nature DQN / PPO papers.

Per env, outermost last:
  RecordEpisodeStatistics   the full game: all lives, unclipped score (what charts/episodic_return shows)
  StartGame                 a game starts with 0-29 random no-op frames
  AtariPreprocessing        repeat each action 4 frames, max-pool the last two; 84x84 gray
  FireOnReset               one step of FIRE after each game reset, for games that wait for it
  EpisodicLife              a lost life ends the learner's episode; the game goes on: the next life starts with
                            one step of FIRE (NOOP in games without it); the game resets only at game over
  ClipReward                rewards clipped to [-1, 1] (ALE rewards are integers: their sign)
  FrameStackObservation     the last 4 frames: observations (4, 84, 84) uint8

The frame-stack rule, the same on every backend (NewLifeStacks gives it to the threaded ones; the test
tests/test_backends.py::test_backends_stack_the_same_frames_at_a_game_start_and_after_a_lost_life holds it): each
life starts with 4 copies of its first frame, the frame of FireOnReset's step (in games without FIRE, of the
no-ops' last frame, not max-pooled) or of the life's restart step; after that, each step shifts in one new frame.

The base env is made with frameskip=1 so that frames are skipped once, in AtariPreprocessing (ALE/...-v5 ids
would otherwise skip 4 themselves); v5's sticky actions (repeat_action_probability 0.25) are kept. Resizing happens
inside AtariPreprocessing, before EpisodicLife, which only looks at lives and actions, not pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from ppo.cli import UsageError
from wrappers.vector import is_atari, lookup_spec, register_atari, with_video

GAMES_HINT = ("python -c \"import gymnasium, ale_py; gymnasium.register_envs(ale_py); "
              "print([i for i in gymnasium.registry if i.startswith('ALE/')])\" lists the games")
NOOP, FIRE = 0, 1


class EpisodicLife(gym.Wrapper):
    """A lost life ends the learner's episode (terminated=True) without resetting the game.

    The following reset() only takes one step of ``restart_action`` (FIRE in games that wait for it, else NOOP)
    to start the next life; the emulator is really reset only when the game is over, or when reset is asked for
    with a seed (a new run, not an autoreset). Gymnasium has no twin of this wrapper.
    """

    def __init__(self, env: gym.Env, restart_action: int = NOOP) -> None:
        super().__init__(env)
        self.restart_action = restart_action
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
            obs, _, terminated, truncated, info = self.env.step(self.restart_action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class StartGame(gym.Wrapper):
    """A game's start, on the one-frame base env: a random count of no-op frames from 0 to ``noop_max`` - 1, as
    ale-py's vector env starts its games in C++ (tests/test_backends.py compares the frames). AtariPreprocessing's
    own no-ops would count from 1."""

    def __init__(self, env: gym.Env, noop_max: int) -> None:
        super().__init__(env)
        self.noop_max = noop_max

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.noops()):
            obs, _, terminated, truncated, info = self.env.step(NOOP)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info

    def noops(self) -> int:
        return int(self.env.unwrapped.np_random.integers(0, self.noop_max)) if self.noop_max > 0 else 0


class FireOnReset(gym.Wrapper):
    """Presses FIRE for one step (4 frames) after every game reset, for games (Breakout, ...) that wait for it
    before play starts. (One frame of FIRE, as ale-py's and EnvPool's ``use_fire_reset`` press, does not launch
    Breakout's ball.)"""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        assert needs_fire(env)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(FIRE)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


class NewLifeStacks:
    """The start of a game or a life, and the frame stack, of wrappers/atari.py for the threaded backends, whose
    C++ envs give one frame a step (``stack_num=1``) and reset a finished game on its next step (NEXT_STEP, a step
    the loop leaves out of the update):

    - the step after a lost life presses ``restart_action`` (FIRE where the game waits for it, else NOOP) in place
      of the learner's action, as EpisodicLife does;
    - a game reset by the C++ env (no-ops only) is, in games that wait for FIRE, followed by one more such step,
      FireOnReset's; the reset step is reported as an end too, so that the loop leaves the FIRE step out as well;
    - each of these steps starts the stack again from 4 copies of its frame.
    """

    def __init__(self, num_envs: int, action_meanings: list[str], depth: int = 4) -> None:
        self.stacks = np.zeros((num_envs, depth, 84, 84), np.uint8)
        self.restart = np.zeros(num_envs, bool)  # envs whose next step starts a life (or is the C++ env's reset)
        self.fire = fire_is_second(action_meanings)
        self.restart_action = restart_action(action_meanings)

    def actions(self, chosen: np.ndarray) -> np.ndarray:
        return np.where(self.restart, self.restart_action, chosen) if self.restart.any() else np.asarray(chosen)

    def reset(self, reset_games: Callable[[], tuple[np.ndarray, dict]],
              step: Callable[[np.ndarray], tuple]) -> tuple[np.ndarray, dict]:
        """Starts every game: the C++ envs' reset (``reset_games``), in games that wait for FIRE FireOnReset's
        step (``step``), then a new stack of 4 copies of each env's frame; the stacks and the last call's info."""
        frames, info = reset_games()
        if self.fire:
            frames, _, _, _, info = step(np.full(len(self.stacks), self.restart_action))
        self.stacks[:] = frames.reshape(len(self.stacks), 1, 84, 84)
        self.restart[:] = False
        return self.stacks.copy(), info

    def step(self, frames: np.ndarray, ended: np.ndarray, reset_now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stacks after this step, and which envs' learner episodes end here: those that ``ended`` (a life or
        the game) and those the C++ env reset on this step (``reset_now``) that still wait for FIRE."""
        frames = frames.reshape(len(self.stacks), 84, 84)
        self.stacks[:, :-1] = self.stacks[:, 1:]  # NumPy copies overlapping slices as if through a buffer
        self.stacks[:, -1] = frames
        if self.restart.any():
            self.stacks[self.restart] = frames[self.restart][:, None]
        ended = np.asarray(ended, bool) | (np.asarray(reset_now, bool) & self.fire)
        self.restart = ended.copy()
        return self.stacks.copy(), ended


def restart_action(action_meanings: list[str]) -> int:
    """The action that starts a game or a new life: FIRE where the game waits for it, else NOOP."""
    return FIRE if fire_is_second(action_meanings) else NOOP


def needs_fire(env: gym.Env) -> bool:
    """Whether the game waits for FIRE before play starts."""
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
                   every_episode: bool = False, frame_stack: int = 4) -> gym.Env:
    """The training env; with ``evaluation``, no ClipReward, so that ppo.evaluate sees the agent's inputs and
    counts whole games with their real score (``info["episode"]`` at game over; a lost life still ends an
    episode of EpisodicLife, after which ppo.evaluate resets to play on). ``every_episode`` records every
    episode's video. ``frame_stack``: frames an observation holds (main_atari.py's --frame-stack)."""
    register_atari()
    env = gym.make(env_id, frameskip=1, render_mode="rgb_array" if video_dir else None)
    if video_dir:
        env = with_video(env, video_dir, every_episode)  # whole games at the original resolution
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = StartGame(env, noop_max)  # below AtariPreprocessing, whose own no-ops (noop_max=0) would come after
    env = gym.wrappers.AtariPreprocessing(env, noop_max=0, frame_skip=4, screen_size=84,
                                          terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    if needs_fire(env):
        env = FireOnReset(env)
    env = EpisodicLife(env, restart_action(env.unwrapped.get_action_meanings()))
    if not evaluation:
        env = gym.wrappers.ClipReward(env, -1, 1)
    return gym.wrappers.FrameStackObservation(env, frame_stack)

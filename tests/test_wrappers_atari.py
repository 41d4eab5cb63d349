"""The Atari preprocessing on real ALE games (ROMs ship with ale-py), no mocks."""

import cv2
import numpy as np
import pytest

from wrappers.atari import EpisodicLife, FireOnReset, make_atari_env


def unwrap(env, kind):
    while not isinstance(env, kind):
        env = env.env
    return env


@pytest.mark.parametrize("game", ["ALE/Pong-v5", "ALE/Breakout-v5", "PongNoFrameskip-v4"])
def test_observation_is_a_uint8_stack_of_four_84x84_frames(game):
    env = make_atari_env(game)
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    # v5 ids skip frames once, in the preprocessing: the base env runs one frame per emulator step.
    assert env.unwrapped._frameskip == 1
    env.close()


def test_a_game_starts_with_0_to_29_noop_frames_then_a_step_of_fire():
    env = make_atari_env("ALE/Pong-v5")
    ale = env.unwrapped.ale
    fire_frames = 4  # Pong has FIRE: one agent step of 4 frames after the no-ops
    noops = []
    for seed in range(12):
        env.reset(seed=seed)
        noops.append(ale.getEpisodeFrameNumber() - fire_frames)
    assert all(0 <= n <= 29 for n in noops), noops
    assert len(set(noops)) > 3, noops  # a random count, not a fixed one
    env.close()


def test_max_pool_of_the_last_two_frames():
    env = make_atari_env("PongNoFrameskip-v4")  # no sticky actions: the emulator can be replayed exactly
    ale = env.unwrapped.ale
    action_set = env.unwrapped._action_set
    env.reset(seed=1)
    pool_differs_from_last_frame = False
    for step in range(60):
        action = [2, 3][step // 10 % 2]  # move the paddle up and down
        state = ale.cloneState()
        obs, *_ = env.step(action)
        ale.restoreState(state)
        frames = []
        for _ in range(4):
            ale.act(action_set[action])
            frames.append(ale.getScreenGrayscale())
        expected = cv2.resize(np.maximum(frames[2], frames[3]), (84, 84), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(obs[-1], expected)
        last_only = cv2.resize(frames[3], (84, 84), interpolation=cv2.INTER_AREA)
        pool_differs_from_last_frame |= bool(np.any(expected != last_only))
    assert pool_differs_from_last_frame
    env.close()


def play_until(env, predicate, limit=20000, action=None):
    for _ in range(limit):
        result = env.step(env.action_space.sample() if action is None else action)
        if predicate(*result):
            return result
    raise AssertionError("condition never reached")


def test_life_loss_ends_the_learner_episode_but_not_the_game():
    env = make_atari_env("ALE/Breakout-v5")
    ale = env.unwrapped.ale
    env.reset(seed=3)
    env.action_space.seed(3)
    lives = ale.lives()
    assert lives == 5
    _, _, terminated, truncated, info = play_until(env, lambda o, r, te, tr, i: te or tr)
    assert terminated and ale.lives() == lives - 1
    assert "episode" not in info  # the game (and its statistics) goes on
    frame = ale.getEpisodeFrameNumber()
    env.reset()
    assert ale.lives() == lives - 1
    assert ale.getEpisodeFrameNumber() > frame  # no emulator reset: the game continued

    learner_episodes = 1
    while True:  # the real reset happens only at game over
        _, _, terminated, _, info = play_until(env, lambda o, r, te, tr, i: te or tr)
        learner_episodes += 1
        if "episode" in info:
            break
        env.reset()
    assert ale.lives() == 0 and learner_episodes == 5
    env.reset()
    assert ale.lives() == 5 and ale.getEpisodeFrameNumber() <= 30 + 4
    env.close()


def test_breakout_is_fired_on_reset():
    env = make_atari_env("ALE/Breakout-v5")
    assert isinstance(unwrap(env, FireOnReset), FireOnReset)
    env.reset(seed=0)
    # Only NOOPs from here on: the ball was launched by the FIRE on reset, so it falls past the idle paddle.
    _, _, terminated, _, _ = play_until(env, lambda o, r, te, tr, i: te, limit=300, action=0)
    assert terminated
    env.close()


def test_pong_fire_and_games_without_fire():
    pong = make_atari_env("ALE/Pong-v5")
    assert isinstance(unwrap(pong, FireOnReset), FireOnReset) and unwrap(pong, EpisodicLife).restart_action == 1
    env = make_atari_env("ALE/Freeway-v5")  # Freeway's actions are NOOP, UP, DOWN
    with pytest.raises(AttributeError):
        unwrap(env, FireOnReset)
    assert unwrap(env, EpisodicLife).restart_action == 0  # NOOP


@pytest.mark.parametrize("game,points", [("ALE/Breakout-v5", 1), ("ALE/Assault-v5", 21)])
def test_learner_rewards_are_clipped_but_episodic_return_is_the_raw_game_score(game, points):
    env = make_atari_env(game)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _game in range(10):  # random play: keep playing whole games until one scores
        rewards = []
        while True:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            rewards.append(reward)
            if "episode" in info:
                break
            if terminated or truncated:
                env.reset()
        env.reset()
        if info["episode"]["r"] > 0:
            break
    assert set(rewards) <= {-1.0, 0.0, 1.0}
    score = info["episode"]["r"]
    positive = sum(r > 0 for r in rewards)
    assert positive > 0
    # Every point of Breakout's bottom rows is worth 1, every Assault kill 21: the logged score is unclipped.
    assert score >= points * positive and score % points == 0
    if points > 1:
        assert score > sum(rewards)
    env.close()

"""The other ways of stepping envs: NEXT_STEP vector envs (Gymnasium's native CartPole, EnvPool, ale-py's vector
env) and the threaded Atari backends (ale-vector, EnvPool) against the gymnasium one."""

import importlib.util

import numpy as np
import pytest
import torch
from conftest import TAGS, assert_usage_error, only_run_dir, read_scalars

import main
import main_atari
import ppo.train
import wrappers.atari_backends
from wrappers.atari import StartGame, make_atari_env
from wrappers.atari_backends import choose_env_backend, make_atari_envs
from wrappers.classic import make_classic_envs
from wrappers.vector import make_vector_env

# The threaded Atari backends; EnvPool is an optional requirement (requirements-envpool.txt).
THREADED = ["ale-vector", pytest.param("envpool", marks=pytest.mark.skipif(
    importlib.util.find_spec("envpool") is None, reason="envpool is not installed"))]
SMALL = ["--num-envs", "2", "--num-steps-collected", "64", "--num-mini-batches", "2", "--no-progress"]


def test_auto_backend_picks_native_cartpole_from_8_envs():
    assert type(make_classic_envs("CartPole-v1", 4, backend="auto")).__name__ == "SyncVectorEnv"
    native = make_classic_envs("CartPole-v1", 8, backend="auto")
    assert type(native.unwrapped).__name__ == "CartPoleVectorEnv"
    assert type(make_classic_envs("Acrobot-v1", 8, backend="auto")).__name__ == "SyncVectorEnv"


def test_next_step_reset_steps_are_left_out_of_the_update(tmp_path, monkeypatch):
    """Native CartPole resets a finished env on its next step, ignoring that step's action: every finished
    episode costs exactly one sample of the batch, and every episode is still logged."""
    sizes = []
    real_update = ppo.train.update_policy

    def spy(agent, optimizer, batch, cfg, world):
        sizes.append(len(batch.obs))
        return real_update(agent, optimizer, batch, cfg, world)

    monkeypatch.setattr(ppo.train, "update_policy", spy)
    log_dir = tmp_path / "runs"
    assert main.main([*SMALL, "--vec-backend", "native", "--total-timesteps", "1280", "--log-dir", str(log_dir)]) == 0
    episodes = len(read_scalars(only_run_dir(log_dir))["charts/episodic_return"])
    # A reset step follows each finished episode, except for the episodes that end on the very last step.
    assert episodes > 10 and sum(128 - size for size in sizes) in range(episodes - 1, episodes + 1)
    assert all(size < 128 for size in sizes[:3])  # random play: episodes of ~20 steps in every rollout


def test_native_backend_refused_where_there_is_none(tmp_path, capsys, monkeypatch):
    assert_usage_error(main.main, "main.py", ["--vec-backend", "native", "--environment-id", "Acrobot-v1"],
                       "native", tmp_path, capsys, monkeypatch)


def play_random(envs, steps, seed=0):
    """Random play; returns (observations, learner rewards, finished games' returns and lengths)."""
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    observations, rewards, returns, lengths = [obs], [], [], []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = envs.step(rng.integers(0, envs.single_action_space.n,
                                                                          envs.num_envs))
        observations.append(obs)
        rewards.append(reward)
        stats = info.get("final_info") or info
        if "episode" in stats:
            returns += stats["episode"]["r"][stats["_episode"]].tolist()
            lengths += stats["episode"]["l"][stats["_episode"]].tolist()
    return np.stack(observations), np.stack(rewards), returns, lengths


@pytest.mark.parametrize("other", THREADED)
def test_threaded_backends_give_the_same_observations_and_log_returns_the_same_way(other):
    results = {}
    for backend in ("gymnasium", other):
        envs = make_atari_envs("ALE/Assault-v5", 2, env_backend=backend)
        assert envs.single_observation_space == make_atari_envs("ALE/Assault-v5", 1).single_observation_space
        results[backend] = play_random(envs, 1500)
        envs.close()
    for backend, (observations, rewards, returns, lengths) in results.items():
        assert observations.shape == (1501, 2, 4, 84, 84) and observations.dtype == np.uint8, backend
        assert set(np.unique(rewards)) <= {0.0, 1.0}, backend  # the learner's rewards are clipped
        # Whole games logged with their real score: Assault pays 21 per enemy, so unclipped returns are
        # multiples of 21, far above the clipped sum of a game.
        assert returns, backend
        assert all(r % 21 == 0 and r >= 21 for r in returns), (backend, returns)
        assert all(length > 4 * 100 for length in lengths), (backend, lengths)  # frames of a whole game
    # Same preprocessing: frames of the same game look alike (gray levels of the same screen).
    means = {backend: results[backend][0].mean() for backend in results}
    assert means["gymnasium"] == pytest.approx(means[other], rel=0.15), means


@pytest.mark.parametrize("other", THREADED)
def test_backends_stack_the_same_frames_at_a_game_start_and_after_a_lost_life(other, monkeypatch):
    """One rule for the start of a game and of a life, and for the frame stack (wrappers/atari.py): the same
    seeded game of Breakout (no sticky actions, no no-ops) gives the same stacked observations, frame for frame,
    on the gymnasium backend and on ``other``, through lost lives and whole games. Each life starts with 4 copies
    of its first frame. The gymnasium backend starts the next life within the step that ended one; ``other``
    (NEXT_STEP) on its next step, the restart, and after a game over on the two next: the reset and the FIRE."""
    if other == "envpool":  # EnvPool's no-ops count from 1 (noop_max=1: exactly one); the others' from 0
        monkeypatch.setattr(StartGame, "noops", lambda self: 1)
    gym_envs = make_vector_env(lambda _: make_atari_env("BreakoutNoFrameskip-v4", noop_max=1), 1)
    envs = make_atari_envs("BreakoutNoFrameskip-v4", 1, env_backend=other, noop_max=1)
    expected, _ = gym_envs.reset(seed=1)
    obs, _ = envs.reset(seed=1)
    np.testing.assert_array_equal(obs, expected)
    assert (expected[0] == expected[0, -1]).all()  # a game starts with 4 copies of its first frame
    rng = np.random.default_rng(0)
    lives = games = 0
    for _ in range(2500):
        actions = rng.integers(0, 4, 1)
        expected, _, ended, _, info = gym_envs.step(actions)
        obs, _, terminated, truncated, _ = envs.step(actions)
        assert (terminated | truncated) == ended
        if ended[0]:
            game_over = "episode" in (info.get("final_info") or info)
            # EnvPool ends its 4-frame skip at a game's end: a last frame the learner neither acts on nor
            # bootstraps from (the game terminated) differs there.
            if not (game_over and other == "envpool"):
                np.testing.assert_array_equal(obs[0], info["final_obs"][0])
            for _restart_step in range(1 + game_over):  # the learner's actions there are not taken
                assert terminated[0]
                obs, _, terminated, *_ = envs.step(rng.integers(0, 4, 1))
            assert not terminated[0]
            assert (expected[0] == expected[0, -1]).all()
            lives += 1
            games += game_over
        np.testing.assert_array_equal(obs, expected)
    assert lives >= 10 and games >= 2
    gym_envs.close()
    envs.close()


def test_ale_vector_backend_plays_whole_games_pressing_fire_after_a_lost_life():
    """Breakout, 5 lives: each lost life ends the learner's episode but not the game, the env's next step presses
    FIRE whatever the learner chose, and a game is logged once, with the unclipped score of all its lives."""
    envs = make_atari_envs("ALE/Breakout-v5", 2, env_backend="ale-vector")
    sent, raw_rewards = [], []
    inner_step = envs.env.step

    def spy(actions):
        sent.append(np.array(actions))
        result = inner_step(actions)
        raw_rewards.append(result[1].copy())
        return result

    envs.env.step = spy
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    assert (sent.pop() == 1).all()  # the game's FIRE, a step of its own (one frame of FIRE does not launch)
    raw_rewards.clear()
    ended, games, returns = [], np.zeros(2, int), []
    for _ in range(3000):
        chosen = rng.integers(2, 4, 2)  # RIGHT or LEFT: never FIRE
        _, reward, terminated, truncated, info = envs.step(chosen)
        ended.append(terminated | truncated)
        assert set(np.unique(reward)) <= {0.0, 1.0}
        if "episode" in info:
            games += info["_episode"]
            returns += info["episode"]["r"][info["_episode"]].tolist()
    ended, sent, raw_rewards = np.array(ended), np.array(sent), np.array(raw_rewards)
    assert (sent[1:][ended[:-1]] == 1).all() and (sent[1:][~ended[:-1]] != 1).all()
    assert games.sum() >= 4 and (ended.sum(axis=0) >= 5 * games).all()  # five lives per game
    assert sum(returns) <= raw_rewards.sum() and max(returns) > 1  # whole games' scores, not single lives
    envs.close()


def test_ale_vector_backend_is_reproducible_from_its_seed():
    """Its envs step in threads; the same seed and actions must still give the same games."""
    finals = []
    for seed in (5, 5, 6):
        envs = make_atari_envs("ALE/Breakout-v5", 4, env_backend="ale-vector")
        observations, rewards, _, _ = play_random(envs, 300, seed=seed)
        finals.append((observations[-1], rewards.sum()))
        envs.close()
    assert (finals[0][0] == finals[1][0]).all() and finals[0][1] == finals[1][1]
    assert (finals[0][0] != finals[2][0]).any()


@pytest.mark.slow
@pytest.mark.parametrize("backend", THREADED)
def test_main_atari_trains_with_a_threaded_backend(tmp_path, backend):
    log_dir = tmp_path / "runs"
    assert main_atari.main(["--environment-id", "ALE/Breakout-v5", "--num-envs", "2", "--num-steps-collected",
                            "128", "--total-timesteps", "1024", "--env-backend", backend, "--log-dir",
                            str(log_dir), "--no-progress"]) == 0
    scalars = read_scalars(only_run_dir(log_dir))
    assert TAGS <= set(scalars)
    assert all(length > 100 for _, length in scalars["charts/episodic_length"])  # whole games, not lives
    saved = torch.load(only_run_dir(log_dir) / "model.pt", weights_only=True)
    assert saved["args"]["env_backend"] == backend


@pytest.mark.parametrize("backend", THREADED)
@pytest.mark.parametrize("flags", [["--capture-video"], ["--vec-backend", "async"]])
def test_threaded_backends_refuse_what_only_the_gymnasium_backend_does(tmp_path, capsys, monkeypatch, backend,
                                                                         flags):
    assert_usage_error(main_atari.main, "main_atari.py", [*flags, "--env-backend", backend], "gymnasium backend",
                       tmp_path, capsys, monkeypatch)


def test_auto_env_backend_is_ale_vector_unless_the_gymnasium_backend_is_needed(monkeypatch):
    assert choose_env_backend("auto", capture_video=False, vec_backend="sync") == "ale-vector"
    assert choose_env_backend("auto", capture_video=True, vec_backend="sync") == "gymnasium"
    assert choose_env_backend("auto", capture_video=False, vec_backend="async") == "gymnasium"
    assert choose_env_backend("gymnasium", capture_video=False, vec_backend="sync") == "gymnasium"
    assert choose_env_backend("envpool", capture_video=False, vec_backend="sync") == "envpool"
    monkeypatch.setattr(wrappers.atari_backends, "has_ale_vector_env", lambda: False)  # an ale-py without it
    assert choose_env_backend("auto", capture_video=False, vec_backend="sync") == "gymnasium"


@pytest.mark.slow
def test_main_atari_records_videos_on_the_gymnasium_backend_it_picks_for_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log_dir = tmp_path / "runs"
    assert main_atari.main(["--environment-id", "ALE/Breakout-v5", "--num-envs", "2", "--num-steps-collected", "64",
                            "--total-timesteps", "128", "--capture-video", "--log-dir", str(log_dir),
                            "--no-progress"]) == 0
    run_dir = only_run_dir(log_dir)
    assert torch.load(run_dir / "model.pt", weights_only=True)["args"]["env_backend"] == "gymnasium"
    videos = sorted((tmp_path / "videos" / run_dir.name).glob("*.mp4"))
    assert videos and videos[0].read_bytes()[4:8] == b"ftyp", list(tmp_path.rglob("*"))

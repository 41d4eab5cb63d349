"""python -m ppo.evaluate and python -m ppo.plot on real runs."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, only_run_dir

import main
import main_atari
from networks import MLPActorCritic
from networks.heads import CategoricalHead
from ppo import checkpoint, evaluate, plot
from ppo.state import TrainState
from ppo.update import make_optimizer
from wrappers.atari import make_atari_env
from wrappers.classic import check_classic_env

SMALL = ["--num-envs", "2", "--num-steps-collected", "64", "--num-mini-batches", "2", "--no-progress"]


def train(log_dir, *flags, entry=main.main):
    assert entry(["--log-dir", str(log_dir), "--no-progress", *flags]) == 0
    return only_run_dir(log_dir)


def evaluation_of(path, capsys, *flags):
    capsys.readouterr()
    assert evaluate.main([str(path), "--no-progress", *flags]) == 0
    out = capsys.readouterr().out
    mean = float(out.split("return ")[1].split(" ±")[0])
    return mean, out


@pytest.mark.slow
def test_a_trained_cartpole_agent_scores_higher_than_a_fresh_one(tmp_path, capsys):
    run_dir = train(tmp_path / "runs", "--total-timesteps", "30000")
    trained, out = evaluation_of(run_dir, capsys, "--episodes", "10", "--deterministic")
    assert out.startswith("10 episodes of CartPole-v1 (deterministic policy, ") and "model.pt" in out

    # The same network untrained, saved the way a run saves its final agent.
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    fresh_agent = MLPActorCritic(*check_classic_env("CartPole-v1"))
    fresh_state = TrainState(fresh_agent, make_optimizer(fresh_agent, 1e-3))
    import argparse
    checkpoint.write_atomically(checkpoint.model_payload(fresh_state, argparse.Namespace(**saved["args"]), "main"),
                                tmp_path / "fresh.pt")
    fresh, _ = evaluation_of(tmp_path / "fresh.pt", capsys, "--episodes", "10", "--deterministic")
    assert fresh < 100 and trained > fresh + 100, (trained, fresh)


def test_videos_of_every_evaluation_episode_are_valid_mp4(tmp_path, capsys):
    run_dir = train(tmp_path / "runs", *SMALL, "--total-timesteps", "256")
    video_dir = tmp_path / "videos"
    _, out = evaluation_of(run_dir, capsys, "--episodes", "2", "--capture-video", "--video-dir", str(video_dir))
    assert f"videos: {video_dir}/" in out
    videos = sorted(video_dir.glob("*.mp4"))
    assert len(videos) == 2
    for video in videos:
        capture = cv2.VideoCapture(str(video))
        assert capture.isOpened()
        ok, frame = capture.read()
        assert ok and frame.shape == (400, 600, 3)  # CartPole's rgb_array frame
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) >= 8  # an episode of random CartPole lasts ≥ 8 steps
        capture.release()


class Noop:
    """An agent that always chooses NOOP (no memory: its state is None, as a feed-forward network's)."""

    head = CategoricalHead(4)

    def initial_state(self, num_envs, device=None):
        return None

    def act_in_state(self, obs, state, starts, deterministic, mask):
        return torch.zeros(len(obs), dtype=torch.long), None, None, state


def test_atari_evaluation_plays_whole_games_with_the_real_score():
    env = make_atari_env("ALE/Breakout-v5", evaluation=True)
    # NOOP only: the game goes on only because each life starts with FIRE, as in training.
    result = evaluate.evaluate(env, Noop(), None, 2, True, torch.device("cpu"))
    assert env.unwrapped.ale.lives() == 0  # all five lives: a whole game
    assert ((result.lengths > 5 * 4 * 10) & (result.lengths < 8000)).all(), result.lengths
    assert (result.returns == 0).all()

    env = make_atari_env("ALE/Breakout-v5", evaluation=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _game in range(10):  # random play: whole games until one scores
        rewards, lives = [], 0
        while True:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            rewards.append(reward)
            if "episode" in info:
                break
            if terminated:  # a lost life: ppo.evaluate resets, which starts the next one as in training
                lives += 1
                env.reset()
        env.reset()
        if info["episode"]["r"] > 0:
            break
    assert lives == 4 and sum(rewards) == info["episode"]["r"] > 0  # the unclipped score of all lives


def test_evaluating_an_atari_run(tmp_path, capsys):
    run_dir = train(tmp_path / "runs", *SMALL, "--environment-id", "ALE/Breakout-v5", "--total-timesteps", "128",
                    entry=main_atari.main)
    _, out = evaluation_of(run_dir, capsys, "--episodes", "1")
    assert out.startswith("1 episodes of ALE/Breakout-v5 (stochastic policy")


def test_evaluate_bad_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"junk")
    for flags, mentions in ([str(tmp_path / "x.pt")], "cannot read checkpoint"), \
            ([str(tmp_path / "missing")], "does not exist"), ([str(tmp_path), "--episodes", "0"], "--episodes"):
        result = subprocess.run([sys.executable, "-m", "ppo.evaluate", *flags], capture_output=True, text=True,
                                cwd=ROOT)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert mentions in result.stderr and "Traceback" not in result.stderr


def test_smoothing_and_seed_band_against_hand_computed_values():
    assert plot.smooth(np.array([1.0, 3.0]), 0.5) == pytest.approx([1.0, (0.25 + 1.5) / 0.75])
    assert plot.smooth(np.array([4.0, 7.0, 1.0]), 0.0) == pytest.approx([4.0, 7.0, 1.0])
    a = plot.Curve(ROOT, "E", "E (x)", np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    b = plot.Curve(ROOT, "E", "E (x)", np.array([0.0, 10.0, 20.0]), np.array([10.0, 30.0, 0.0]))
    steps, mean, low, high = plot.mean_and_band([a, b], weight=0.0, points=3)
    assert steps == pytest.approx([0, 5, 10])  # only the steps both runs cover
    assert mean == pytest.approx([5, 12.5, 20]) and low == pytest.approx([0, 5, 10])
    assert high == pytest.approx([10, 20, 30])


def test_plot_draws_seeds_as_a_band_and_other_runs_as_lines(tmp_path, capsys):
    log_dir = tmp_path / "runs"
    for seed in ("1", "2"):
        train(log_dir / seed, *SMALL, "--total-timesteps", "2048", "--seed", seed)
    train(log_dir / "acrobot", *SMALL, "--environment-id", "Acrobot-v1", "--total-timesteps", "2048")
    runs = [only_run_dir(log_dir / name) for name in ("1", "2", "acrobot")]
    output = tmp_path / "plots" / "curves.png"

    curves = [plot.read_curve(run) for run in runs]
    labels = plot.plot(curves, output, 0.9, None, 640, 480)
    assert labels == ["CartPole-v1 (ppo), mean of 2 seeds (band: min to max)", "Acrobot-v1 (ppo), seed 1"]

    output.unlink()
    assert plot.main([*map(str, runs), "-o", str(output), "--width", "640", "--height", "480"]) == 0
    image = cv2.imread(str(output))
    assert image.shape == (480, 640, 3)
    # Not blank: the lines' colours are there, not only white and the grays of axes and text.
    b, g, r = (image[..., i].astype(int) for i in range(3))
    coloured = (np.maximum(np.maximum(abs(b - g), abs(g - r)), abs(b - r)) > 60).sum()
    assert coloured > 500, coloured


def test_plot_bad_input_is_one_line_exit_2(tmp_path):
    for flags, mentions in ([str(tmp_path / "missing")], "not a directory"), ([str(tmp_path)], "no TensorBoard"):
        result = subprocess.run([sys.executable, "-m", "ppo.plot", *flags, "-o", str(tmp_path / "c.png")],
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert mentions in result.stderr and not (tmp_path / "c.png").exists()

"""End-to-end runs of main_atari.py on a real ALE game, and its bad-input handling."""

import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TAGS, assert_usage_error, only_run_dir, read_scalars

import main_atari
from networks.cnn import CNNActorCritic


def test_help_shows_the_atari_description(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_atari.main(["-h"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "PPO Atari Training Script" in out and "(default: ALE/Assault-v5)" in out and "(default: 1e7)" in out


@pytest.mark.slow
def test_two_updates_write_tensorboard_and_model(tmp_path, capsys):
    log_dir = tmp_path / "runs"
    # 2 envs × 128 steps × 2 updates: random Breakout games last ~150-250 agent steps, so games finish.
    assert main_atari.main(["--environment-id", "ALE/Breakout-v5", "--num-envs", "2", "--num-steps-collected",
                            "128", "--total-timesteps", "512", "--log-dir", str(log_dir), "--no-progress"]) == 0
    run_dir = only_run_dir(log_dir)
    assert run_dir.name.startswith("ALE_Breakout-v5__ppo_atari__1__")
    scalars = read_scalars(run_dir)
    assert TAGS <= set(scalars)
    assert [step for step, _ in scalars["charts/SPS"]] == [256, 512]
    # The full-game score, not a clipped per-life reward: Breakout games end after 5 lives.
    assert all(length > 100 for _, length in scalars["charts/episodic_length"])

    saved = torch.load(run_dir / "model.pt", weights_only=False)
    assert saved["script"] == "main_atari" and saved["env_id"] == "ALE/Breakout-v5"
    assert saved["args"]["env_backend"] == "ale-vector"  # what --env-backend auto chose, recorded
    import gymnasium as gym
    import numpy as np
    agent = CNNActorCritic(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4))
    agent.load_state_dict(saved["model"])
    assert "512 steps in" in capsys.readouterr().out


def test_nature_cnn_scales_uint8_inside():
    import gymnasium as gym
    import numpy as np
    agent = CNNActorCritic(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6))
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    action, logprob, value = agent.act(frames)
    assert action.shape == (3,) and value.shape == (3,)
    params, _ = agent(frames)
    torch.testing.assert_close(params, agent(frames.float())[0])  # same input, uint8 or float: scaled inside
    assert agent.trunk[0][0].out_channels == 32 and agent.trunk[0][0].kernel_size == (8, 8)
    assert agent.trunk[1].out_features == 512


BAD_INPUTS = [
    (["--environment-id", "CartPole-v1"], "use main.py"),
    (["--environment-id", "ALE/NoSuchGame-v5"], "lists the games"),
    (["--environment-id", "ALE/Pong-ram-v5"], "ram"),
    (["--environment-id", "NoSuchGameNoFrameskip-v4"], "lists the games"),
    (["--num-envs", "0"], "--num-envs"),
    (["--num-mini-batches", "7"], "--num-mini-batches"),
    (["--clip-coeff", "-0.1"], "--clip-coeff"),
]


@pytest.mark.parametrize("flags,mentions", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_run_directory(flags, mentions, tmp_path, capsys, monkeypatch):
    assert_usage_error(main_atari.main, "main_atari.py", flags, mentions, tmp_path, capsys, monkeypatch)


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "main_atari.py"), "--environment-id", "CartPole-v1",
                             "--log-dir", str(tmp_path / "runs")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

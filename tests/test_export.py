"""python -m ppo.export: the ONNX policy takes the env's observations and gives the action ppo.evaluate's
deterministic policy takes, for every action space main.py takes, images, packed Dicts and the Nature CNN."""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import onnxruntime
import pytest
import torch
from conftest import ROOT, only_run_dir

import main
import main_atari
from ppo import checkpoint, export
from ppo.evaluate import make_env_and_agent

CASES = {
    "discrete": ["--environment-id", "CartPole-v1"],
    "box-normalized": ["--environment-id", "Pendulum-v1"],
    "multi-discrete": ["--environment-id", "test_spaces:ActionCorridor-v0", "--env-kwargs", "actions='multi_discrete'"],
    "multi-binary": ["--environment-id", "test_spaces:ActionCorridor-v0", "--env-kwargs", "actions='multi_binary'"],
    "flattened-dict": ["--environment-id", "test_spaces:ShapedCorridor-v0", "--env-kwargs", "kind='dict'"],
    "masked": ["--environment-id", "test_masks:MaskedCorridor-v0"],
    "image": ["--environment-id", "image_envs:PixelCue-v0", "--frame-stack", "2"],
}


@pytest.fixture(autouse=True)
def tests_on_the_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))


def ppo_evaluate_actions(payload: dict, count: int = 64) -> tuple[list[np.ndarray], list, list[np.ndarray]]:
    """Observations of real episodes, their masks, and the action ppo.evaluate's deterministic policy takes."""
    env, agent, normalizer = make_env_and_agent(payload, None, torch.device("cpu"))
    observations, masks, actions = [], [], []
    obs, info = env.reset(seed=123)
    for _ in range(count):
        mask = np.asarray(info["action_mask"], bool) if "action_mask" in info else None
        seen = normalizer(np.asarray(obs)[None], update=False)[0] if normalizer is not None else obs
        with torch.no_grad():
            action = agent.act(torch.as_tensor(np.asarray(seen))[None], True,
                               None if mask is None else torch.as_tensor(mask)[None])[0][0].numpy()
        if isinstance(env.action_space, gym.spaces.Box):
            action = np.clip(action, env.action_space.low, env.action_space.high)
        observations.append(np.asarray(obs))
        masks.append(mask)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset()
    env.close()
    return observations, masks, actions


def check_exported(run_dir, capsys, discrete: bool) -> None:
    assert export.main([str(run_dir), "--with-value"]) == 0
    assert "checked on 1,000 observations" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(run_dir / "policy.onnx"))
    names = [given.name for given in session.get_inputs()]
    observations, masks, actions = ppo_evaluate_actions(checkpoint.load(str(run_dir), "RUN", True).payload)
    assert names == (["obs", "action_mask"] if masks[0] is not None else ["obs"])
    for obs, mask, expected in zip(observations, masks, actions, strict=True):
        feeds = {"obs": obs[None], **({"action_mask": mask[None]} if mask is not None else {})}
        action, value = session.run(None, feeds)
        assert value.shape == (1,)
        if discrete:
            np.testing.assert_array_equal(action[0], expected)
        else:  # float32 normalization in the model, float64 in ppo.evaluate's NumPy normalizer
            np.testing.assert_allclose(action[0], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_the_onnx_policy_takes_ppo_evaluates_actions(case, tmp_path, capsys):
    assert main.main([*CASES[case], "--num-envs", "2", "--total-timesteps", "512", "--no-progress", "--log-dir",
                      str(tmp_path)]) == 0
    check_exported(only_run_dir(tmp_path), capsys, discrete=case != "box-normalized")


@pytest.mark.slow
def test_the_nature_cnn_of_an_atari_run_exports_with_uint8_frame_stacks(tmp_path, capsys):
    assert main_atari.main(["--environment-id", "ALE/Pong-v5", "--num-envs", "2", "--total-timesteps", "256",
                            "--no-progress", "--log-dir", str(tmp_path)]) == 0
    check_exported(only_run_dir(tmp_path), capsys, discrete=True)
    session = onnxruntime.InferenceSession(str(only_run_dir(tmp_path) / "policy.onnx"))
    assert session.get_inputs()[0].type == "tensor(uint8)" and session.get_inputs()[0].shape[1:] == [4, 84, 84]


def test_bad_export_input_is_one_line(tmp_path):
    for name, flags in (("cartpole", []), ("dict", ["--environment-id", "image_envs:CueAndFlip-v0"])):
        assert main.main([*flags, "--total-timesteps", "256", "--num-envs", "2", "--no-progress", "--log-dir",
                          str(tmp_path / name)]) == 0
    cartpole, packed = (str(only_run_dir(tmp_path / name)) for name in ("cartpole", "dict"))
    for run_dir, flags, mentions in ((cartpole, ["-o", str(tmp_path / "missing" / "p.onnx")], "does not exist"),
                                     (cartpole, ["--best"], "--eval-every"),
                                     (packed, [], "not supported yet")):
        result = subprocess.run([sys.executable, "-m", "ppo.export", run_dir, *flags], capture_output=True,
                                text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and mentions in result.stderr, result.stderr
    assert not (tmp_path / "missing").exists() and not list(tmp_path.rglob("*.onnx"))

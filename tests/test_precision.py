"""--bf16: the network runs under torch.autocast(bfloat16) in rollouts and updates alike; the rest stays float32."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import only_run_dir

import main
import main_atari
import ppo.config
from networks.cnn import CNNActorCritic
from ppo.update import mixed_precision

FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def make_cnn() -> CNNActorCritic:
    torch.manual_seed(0)
    return CNNActorCritic(FRAMES, gym.spaces.Discrete(4), device="cpu")


def test_bf16_runs_the_convolutions_in_bfloat16_and_hands_back_float32():
    agent = make_cnn()
    seen = []
    agent.trunk[0][0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    frames = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    actions = torch.randint(0, 4, (8,))
    with torch.no_grad():
        reference, _, reference_value = agent.evaluate(frames, actions)
        with mixed_precision(torch.device("cpu"), bf16=True):
            logprob, entropy, value = agent.evaluate(frames, actions)
    assert seen == [torch.float32, torch.bfloat16]
    assert logprob.dtype == entropy.dtype == value.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: close to the float32 result, but not the same computation.
    torch.testing.assert_close(logprob, reference, atol=0.02, rtol=0)
    torch.testing.assert_close(value, reference_value, atol=0.05, rtol=0.02)
    assert not torch.equal(logprob, reference)


@pytest.mark.parametrize("bf16", [True, False])
def test_every_forward_of_a_run_uses_the_chosen_precision(bf16, tmp_path, monkeypatch):
    """Rollout inference, bootstrap values and the update all run in the same precision, so the update's first
    ratio compares the network with itself, not float32 log-probabilities with bfloat16 ones."""
    calls = []
    forward = CNNActorCritic.forward

    def spy(self, obs):
        calls.append((torch.is_autocast_enabled("cpu"), torch.is_grad_enabled()))
        return forward(self, obs)

    monkeypatch.setattr(CNNActorCritic, "forward", spy)
    log_dir = tmp_path / "runs"
    assert main_atari.main(["--environment-id", "ALE/Breakout-v5", "--num-envs", "2", "--num-steps-collected",
                            "16", "--num-mini-batches", "2", "--num-epochs", "1", "--total-timesteps", "32",
                            *(["--bf16"] if bf16 else []), "--log-dir", str(log_dir), "--no-progress"]) == 0
    # 16 rollout steps + the final value, then 2 minibatches with gradients.
    assert [grad for _, grad in calls] == [False] * 17 + [True] * 2
    assert {autocast for autocast, _ in calls} == {bf16}
    saved = torch.load(only_run_dir(log_dir) / "model.pt", weights_only=True)
    assert saved["args"]["bf16"] is bf16
    assert all(tensor.dtype == torch.float32 for tensor in saved["model"].values())  # weights stay float32


@pytest.mark.parametrize("supported", [True, False])
def test_bf16_warns_only_without_hardware_support_and_trains_either_way(supported, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ppo.config, "cpu_has_bfloat16", lambda: supported)
    assert main.main(["--total-timesteps", "128", "--num-steps-collected", "32", "--bf16",
                      "--log-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    warning = ("warning: --bf16: this CPU has no AVX512-BF16 or AMX instructions, so bfloat16 is emulated: "
               "several times slower than float32 (Breakout: 9x on an AVX2 CPU)")
    assert capsys.readouterr().err.strip().splitlines() == ([] if supported else [warning])


def test_the_cpu_check_reads_the_flags_linux_lists():
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    assert ppo.config.cpu_has_bfloat16() == ("avx512_bf16" in flags or "amx_bf16" in flags)

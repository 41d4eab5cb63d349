"""--use-gpu on a real GPU: the update on CUDA is the CPU's within float32 tolerance, a GPU run resumes and is
evaluated on the CPU, --bf16 and torchrun with NCCL run. Skipped where CUDA is absent (CI, the 2-core machine);
`.gpu/check.sh` runs them wherever a GPU is lent (its step "CUDA tests" selects tests named cuda, gpu or bf16)."""

import os
import subprocess
import sys

import gymnasium as gym
import pytest
import torch
from conftest import ROOT, only_run_dir

import main
import main_atari
from networks import MLPActorCritic
from networks.cnn import CNNActorCritic
from ppo import evaluate
from ppo.buffer import Batch
from ppo.config import TrainConfig
from ppo.update import make_optimizer, update_policy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: --use-gpu has no GPU here")

CFG = TrainConfig(num_envs=8, num_steps=16, num_minibatches=2, num_epochs=2, learning_rate=2.5e-4,
                  total_timesteps=128, gamma=0.99, gae_lambda=0.95, clip_coef=0.1, ent_coef=0.01, vf_coef=0.5,
                  max_grad_norm=0.5, seed=1)
FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")


def make_agent(kind: str, device: str) -> torch.nn.Module:
    torch.manual_seed(0)  # initialized on the CPU, then moved: the same weights on either device
    if kind == "mlp":
        return MLPActorCritic(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Box(-1.0, 1.0, (2,)), device=device)
    return CNNActorCritic(FRAMES, gym.spaces.Discrete(6), device=device)


def make_batch(kind: str, device: str) -> Batch:
    generator, size = torch.Generator().manual_seed(1), CFG.batch_size
    obs = torch.randint(0, 256, (size, *FRAMES.shape), generator=generator, dtype=torch.uint8) if kind == "cnn" \
        else torch.randn(size, 4, generator=generator)
    actions = torch.randint(0, 6, (size,), generator=generator) if kind == "cnn" \
        else torch.randn(size, 2, generator=generator)
    with torch.no_grad():  # the log-probabilities of the rollout's policy, as a real update starts from
        logprobs = make_agent(kind, "cpu").evaluate(obs, actions)[0]
    rest = [torch.randn(size, generator=generator) for _ in range(3)]
    return Batch(obs.to(device), actions.to(device), logprobs.to(device), *(tensor.to(device) for tensor in rest))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_one_update_on_cuda_is_the_cpu_update_within_float32_tolerance(kind, monkeypatch):
    # PyTorch runs CUDA convolutions in TF32 by default (10-bit mantissa): the comparison is of float32 arithmetic.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    results = {}
    for device in ("cpu", "cuda"):
        agent = make_agent(kind, device)
        torch.manual_seed(2)  # the same minibatch permutations: drawn on the CPU on either device
        stats = update_policy(agent, make_optimizer(agent, CFG.learning_rate), make_batch(kind, device), CFG)
        results[device] = stats, {name: p.detach().cpu() for name, p in agent.named_parameters()}
    (cpu_stats, cpu_weights), (cuda_stats, cuda_weights) = results["cpu"], results["cuda"]
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        assert cuda_stats[key] == pytest.approx(cpu_stats[key], rel=1e-4, abs=1e-6), key
    initial, moved = make_agent(kind, "cpu").state_dict(), 0
    for name, weight in cpu_weights.items():
        # 4 Adam steps of at most about lr each: float32 differences in the gradients move a weight by far less.
        torch.testing.assert_close(cuda_weights[name], weight, rtol=1e-4, atol=2e-5, msg=name)
        moved += int((weight != initial[name]).any())
    assert moved == len(cpu_weights)  # every tensor stepped: the comparison means something


def test_a_gpu_run_resumes_and_is_evaluated_on_the_cpu(tmp_path):
    flags = ["--total-timesteps", "1024", "--save-every", "4", "--no-progress", "--log-dir", str(tmp_path / "runs")]
    assert main.main(["--use-gpu", *flags]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "2048", "--no-progress"]) == 0  # on the CPU
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 2048
    assert evaluate.main([str(run_dir), "--episodes", "2", "--no-progress"]) == 0


def test_bf16_on_cuda_trains_atari(tmp_path):
    flags = ["--use-gpu", "--bf16", "--total-timesteps", "2048", "--no-progress", "--log-dir", str(tmp_path)]
    assert main_atari.main(flags) == 0
    saved = torch.load(only_run_dir(tmp_path) / "model.pt", weights_only=True)
    assert saved["global_step"] == 2048
    assert all(torch.isfinite(tensor).all() for tensor in saved["model"].values())


def test_torchrun_one_rank_with_nccl_on_cuda(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "main_atari.py", "--use-gpu", "--total-timesteps", "2048", "--no-progress", "--log-dir", str(tmp_path)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert torch.load(only_run_dir(tmp_path) / "model.pt", weights_only=True)["global_step"] == 2048


@pytest.mark.parametrize("env_flags", [["image_envs:PixelCue-v0", "--frame-stack", "2"], ["image_envs:CueAndFlip-v0"]])
def test_image_and_dict_observations_train_on_cuda(env_flags, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    flags = ["--environment-id", *env_flags, "--num-envs", "8", "--num-steps-collected", "32", "--total-timesteps",
             "2048", "--no-progress", "--log-dir", str(tmp_path / "runs")]
    assert main.main(["--use-gpu", *flags]) == 0
    assert evaluate.main([str(only_run_dir(tmp_path / "runs")), "--episodes", "2", "--no-progress"]) == 0  # CPU

"""Several processes under torchrun (ppo/distributed.py), on the CPU with gloo: one policy, the same weights on
every rank after every update, one writer, and a stop that resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import ROOT, only_run_dir, read_scalars

import main
from networks import MLPActorCritic
from ppo.buffer import Batch
from ppo.config import TrainConfig
from ppo.distributed import ONE_PROCESS, ProcessGroup
from ppo.update import make_optimizer, update_policy

SMALL = ["--num-envs", "2", "--num-steps-collected", "128", "--no-progress"]


def torchrun(*args, env=None, **kwargs):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_two_ranks_train_one_policy_and_rank_0_alone_writes(tmp_path):
    log_dir, probe = tmp_path / "runs", tmp_path / "probe"
    probe.mkdir()
    run = torchrun("tests/distributed_probe.py", *SMALL, "--total-timesteps", "4096", "--log-dir", str(log_dir),
                   env={"PROBE_DIR": str(probe)})
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    ranks = [json.loads((probe / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    # 4096 steps of 2 ranks x 2 envs x 128 steps: 8 updates; after each, the same weights on both ranks.
    assert len(ranks[0]["weights"]) == 8 and ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["first"] == ranks[1]["first"] != ranks[0]["weights"][0]
    run_dir = only_run_dir(log_dir)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    scalars = read_scalars(run_dir)
    # Every rank's episodes are logged by rank 0 (random CartPole: dozens on each rank).
    assert min(rank["episodes"] for rank in ranks) > 20
    assert len(scalars["charts/episodic_return"]) == ranks[0]["episodes"] + ranks[1]["episodes"]
    assert scalars["charts/SPS"][-1][0] == 4096  # the global step counts both ranks
    assert out.count("4,096 steps in") == 1  # one summary line, rank 0's
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert saved["world_size"] == 2
    assert round(saved["reward_rms"]["count"]) == 4096  # reward statistics from both ranks' returns


def gradient(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """The gradient of one minibatch step on a fixed rollout of 4 envs x 16 steps: the whole of it in one
    process, or in rank ``rank`` of 2 the rollout of envs 2·rank and 2·rank + 1. Saved to out_dir."""
    world = ONE_PROCESS
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
        world = ProcessGroup(torch.device("cpu"))
    torch.manual_seed(0)
    agent = MLPActorCritic(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    optimizer = make_optimizer(agent, 1e-3)
    generator = torch.Generator().manual_seed(1)
    steps, envs = 16, 4
    obs = torch.randn(steps, envs, 4, generator=generator)
    actions = torch.randint(0, 2, (steps, envs), generator=generator)
    with torch.no_grad():
        logprobs = agent.evaluate(obs.reshape(-1, 4), actions.reshape(-1))[0].reshape(steps, envs)
    logprobs = logprobs + 0.05 * torch.randn(steps, envs, generator=generator)  # ratios away from 1
    values, advantages, returns = (torch.randn(steps, envs, generator=generator) for _ in range(3))
    mine = slice(None) if world_size == 1 else slice(2 * rank, 2 * rank + 2)
    batch = Batch(*(tensor[:, mine].reshape(-1, *tensor.shape[2:]) for tensor in
                    (obs, actions, logprobs, values, advantages, returns)))
    cfg = TrainConfig(num_envs=envs // world_size, num_steps=steps, num_minibatches=1, num_epochs=1,
                      learning_rate=1e-3, total_timesteps=64, gamma=0.99, gae_lambda=0.95, clip_coef=0.2,
                      ent_coef=0.01, vf_coef=0.5, max_grad_norm=100.0, seed=1, world_size=world_size)
    captured = []
    real_step = optimizer.step
    optimizer.step = lambda: (captured.append(optimizer.flat.grad.clone()), real_step())
    update_policy(agent, optimizer, batch, cfg, world)
    torch.save(captured[0], os.path.join(out_dir, f"grad_{world_size}_{rank}.pt"))
    world.close()


def test_two_ranks_average_the_gradient_of_one_process_on_their_envs_together(tmp_path):
    gradient(0, 1, 0, str(tmp_path))
    port = 29500 + os.getpid() % 1000
    mp.start_processes(gradient, args=(2, port, str(tmp_path)), nprocs=2, start_method="spawn")
    one = torch.load(tmp_path / "grad_1_0.pt")
    ranks = [torch.load(tmp_path / f"grad_2_{rank}.pt") for rank in (0, 1)]
    assert torch.equal(ranks[0], ranks[1])  # by construction: both ranks hold the one all-reduced sum
    assert one.abs().max() > 1e-3
    # Summed in another order than one process's minibatch mean: equal within float32 rounding, not to the bit.
    torch.testing.assert_close(ranks[0], one, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_a_two_rank_run_stopped_with_sigint_resumes(tmp_path):
    log_dir = tmp_path / "runs"
    run = torchrun("main.py", *SMALL, "--total-timesteps", "51200", "--save-every", "1", "--log-dir",
                   str(log_dir), start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(log_dir.glob("*/checkpoints/step_*.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(run.pid, signal.SIGINT)  # torchrun hands it to both ranks, which stop at the same update
    out, err = run.communicate(timeout=120)
    assert "stopped; checkpoint at step" in out, (out, err)
    assert "resume with: torchrun --nproc_per_node 2 main.py --resume" in out
    run_dir = only_run_dir(log_dir)
    stopped_at = torch.load(sorted((run_dir / "checkpoints").glob("step_*.pt"))[-1], weights_only=True)
    assert 0 < stopped_at["global_step"] < 51200 and stopped_at["world_size"] == 2
    resumed = torchrun("main.py", "--resume", str(run_dir), "--no-progress")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"51,200 steps (resumed at {stopped_at['global_step']:,})" in out
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 51200


def test_resume_with_another_number_of_processes_is_refused(tmp_path, monkeypatch, capsys):
    log_dir = tmp_path / "runs"
    assert main.main([*SMALL, "--total-timesteps", "512", "--save-every", "1", "--log-dir", str(log_dir)]) == 0
    assert not torch.distributed.is_initialized()  # without torchrun: no process group
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--resume", str(sorted((only_run_dir(log_dir) / "checkpoints").glob("step_*.pt"))[0])])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained by 1 process(es)" in err[0] and "not 2" in err[0], err


def test_normalization_statistics_take_every_ranks_rows():
    from ppo.normalize import ObservationNormalizer

    both = np.arange(12, dtype=np.float64).reshape(6, 2)
    alone, shared = ObservationNormalizer((2,)), ObservationNormalizer((2,), gather_rows=lambda rows: both)
    alone(both)
    shared(both[:3])  # this rank's half; the other half comes from the other rank
    np.testing.assert_array_equal(alone.rms.mean, shared.rms.mean)
    np.testing.assert_array_equal(alone.rms.var, shared.rms.var)


def test_an_env_that_raises_on_one_rank_stops_both_and_rank_0_saves(tmp_path):
    log_dir = tmp_path / "runs"
    run = torchrun("main.py", "--environment-id", "tests.crashing_env:CrashingOnRank1-v0", *SMALL,
                   "--total-timesteps", "4096", "--log-dir", str(log_dir))
    out, err = run.communicate(timeout=300)
    assert run.returncode != 0
    assert "RuntimeError: rank 1's env broke" in err  # rank 1's own traceback
    # 2 ranks x 2 envs x 128 steps an update: the env raises in the second rollout; update 1 is saved.
    assert "checkpoint of the last completed update (step 512)" in err, err
    assert "resume with: torchrun --nproc_per_node 2 main.py --resume" in err
    saved = torch.load(only_run_dir(log_dir) / "checkpoints" / "step_000000000512.pt", weights_only=True)
    assert saved["update"] == 1 and saved["world_size"] == 2


def test_a_non_finite_value_on_one_rank_stops_both_and_nothing_is_written_after_it(tmp_path):
    log_dir = tmp_path / "runs"
    run = torchrun("main.py", "--environment-id", "tests.crashing_env:NonFiniteOnRank1-v0", *SMALL,
                   "--total-timesteps", "4096", "--save-every", "1", "--log-dir", str(log_dir))
    out, err = run.communicate(timeout=300)
    assert run.returncode != 0
    # 2 ranks x 2 envs x 128 steps an update: the NaN comes in the second rollout, on rank 1.
    assert "non-finite reward at step" in err  # rank 1's own line
    assert "error: non-finite value on another rank (its message is above) in the rollout that began at step 512" \
        in err, err
    assert "the last good checkpoint is" in err and "step_000000000512.pt" in err
    checkpoints = sorted((only_run_dir(log_dir) / "checkpoints").glob("step_*.pt"))
    assert [path.name for path in checkpoints] == ["step_000000000512.pt"]
    assert not (only_run_dir(log_dir) / "model.pt").exists()

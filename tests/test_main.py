"""End-to-end runs of main.py, its bad-input handling, reproducibility and a learning check."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, TAGS, assert_usage_error, only_run_dir, read_scalars

import main
from networks import MLPActorCritic

SMALL = ["--num-envs", "2", "--num-steps-collected", "64", "--num-mini-batches", "2", "--no-progress"]


def run_main(tmp_path, *flags):
    log_dir = tmp_path / "runs"
    assert main.main([*SMALL, "--log-dir", str(log_dir), *flags]) == 0
    return only_run_dir(log_dir)


def test_cartpole_run_writes_tensorboard_and_model(tmp_path, capsys):
    run_dir = run_main(tmp_path, "--total-timesteps", "2048", "--exp-name", "e2e", "--seed", "3")
    assert run_dir.name.startswith("CartPole-v1__e2e__3__")
    scalars = read_scalars(run_dir)
    assert TAGS <= set(scalars)
    assert [step for step, _ in scalars["charts/SPS"]] == [128 * k for k in range(1, 17)]
    learning_rates = [value for _, value in scalars["charts/learning_rate"]]
    assert learning_rates[0] == pytest.approx(2.5e-4) and learning_rates[-1] == pytest.approx(2.5e-4 / 16)
    assert all(a > b for a, b in zip(learning_rates, learning_rates[1:], strict=False))  # linear annealing

    saved = torch.load(run_dir / "model.pt", weights_only=False)
    assert saved["env_id"] == "CartPole-v1" and saved["args"]["seed"] == 3
    assert saved["obs_rms"] is None and saved["reward_rms"] is not None
    import gymnasium as gym
    env = gym.make("CartPole-v1")
    MLPActorCritic(env.observation_space, env.action_space).load_state_dict(saved["model"])

    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("2,048 steps in ") and "mean return of the last" in summary
    assert str(run_dir) in summary


def test_pendulum_run_saves_normalization_statistics(tmp_path):
    run_dir = run_main(tmp_path, "--environment-id", "Pendulum-v1", "--total-timesteps", "1024")
    saved = torch.load(run_dir / "model.pt", weights_only=False)
    assert saved["obs_rms"]["mean"].shape == (3,) and saved["obs_rms"]["count"] > 1000
    assert saved["reward_rms"] is not None
    assert "head.log_std" in saved["model"]
    # 1024 steps = 5 Pendulum episodes of 200 steps (time-limit truncations) across the two envs.
    assert len(read_scalars(run_dir)["charts/episodic_return"]) == 4


def test_normalization_can_be_turned_off(tmp_path):
    run_dir = run_main(tmp_path, "--environment-id", "Pendulum-v1", "--total-timesteps", "256",
                       "--no-normalize-observation", "--no-normalize-reward")
    saved = torch.load(run_dir / "model.pt", weights_only=False)
    assert saved["obs_rms"] is None and saved["reward_rms"] is None


def test_same_seed_gives_identical_weights_on_cpu(tmp_path):
    # Bit for bit by construction: the same code on the same inputs on one machine, in one thread.
    weights = []
    for name in ("a", "b"):
        run_dir = run_main(tmp_path / name, "--total-timesteps", "1024", "--seed", "7")
        weights.append(torch.load(run_dir / "model.pt", weights_only=False)["model"])
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:  # the same envs stepped in other processes: the same numbers, so the same bits
        assert torch.equal(weights[0][key], weights[1][key]), key
    other = torch.load(run_main(tmp_path / "c", "--total-timesteps", "1024", "--seed", "8") / "model.pt",
                       weights_only=False)["model"]
    assert not torch.equal(other["actor.0.weight"], weights[0]["actor.0.weight"])


def test_capture_video_writes_mp4(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = run_main(tmp_path, "--total-timesteps", "256", "--capture-video")
    videos = sorted((tmp_path / "videos" / run_dir.name).glob("*.mp4"))
    assert videos, list(tmp_path.rglob("*"))
    assert videos[0].read_bytes()[4:8] == b"ftyp"


class TextObservation(gym.Env):
    """An observation main.py cannot flatten: free text."""

    observation_space = gym.spaces.Text(8)
    action_space = gym.spaces.Discrete(2)


gym.register("TextObservation-v0", entry_point=TextObservation)


class VolumeObservation(TextObservation):
    """A uint8 array that is no image: 10 channels at either end."""

    observation_space = gym.spaces.Box(0, 255, (10, 10, 10), np.uint8)


gym.register("VolumeObservation-v0", entry_point=VolumeObservation)

BAD_INPUTS = [
    (["--environment-id", "NoSuchEnv-v0"], "--environment-id"),
    (["--environment-id", "ALE/Pong-v5"], "main_atari.py"),
    (["--environment-id", "VolumeObservation-v0"], "as an image"),
    (["--eval-every", "100"], "one rollout"),
    (["--eval-episodes", "0"], "--eval-episodes"),
    (["--environment-id", "TextObservation-v0"], "--environment-id"),
    (["--num-envs", "0"], "--num-envs"),
    (["--num-steps-collected", "-5"], "--num-steps-collected"),
    (["--num-epochs", "0"], "--num-epochs"),
    (["--total-timesteps", "abc"], "--total-timesteps"),
    (["--num-mini-batches", "3"], "--num-mini-batches"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--learning-rate", "-1e-3"], "--learning-rate"),
    (["--gae-gamma", "1.5"], "--gae-gamma"),
    (["--gae-lambda", "-0.1"], "--gae-lambda"),
    (["--clip-coeff", "0"], "--clip-coeff"),
    (["--cpu-threads", "0"], "--cpu-threads"),
]


def test_a_tuple_observation_trains(tmp_path):
    """Blackjack-v1 observes Tuple(Discrete(32), Discrete(11), Discrete(2)): flattened to 45 one-hot values."""
    run_dir = run_main(tmp_path, "--environment-id", "Blackjack-v1", "--total-timesteps", "256")
    assert torch.load(run_dir / "model.pt", weights_only=True)["model"]["actor.0.weight"].shape == (64, 45)


@pytest.mark.parametrize("flags,mentions", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_run_directory(flags, mentions, tmp_path, capsys, monkeypatch):
    assert_usage_error(main.main, "main.py", flags, mentions, tmp_path, capsys, monkeypatch)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_use_gpu_without_cuda_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--use-gpu", "--log-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    assert "--use-gpu" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--num-mini-batches", "5",
                             "--log-dir", str(tmp_path / "runs")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "512" in result.stderr and not (tmp_path / "runs").exists()


def test_a_run_from_the_shell_leaves_its_output_and_files_complete(tmp_path):
    """The script ends without the interpreter's teardown (ppo.runner.exit_process): everything it prints and
    writes must be complete by then."""
    log_dir = tmp_path / "runs"
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), *SMALL, "--total-timesteps", "1024",
                             "--log-dir", str(log_dir), "--timings"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("1,024 steps in ") and lines[-1].startswith("time per phase: env ")
    run_dir = only_run_dir(log_dir)
    scalars = read_scalars(run_dir)
    assert TAGS <= set(scalars) and scalars["charts/SPS"][-1][0] == 1024  # the last update's events too
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 1024
    assert len(list((run_dir / "checkpoints").glob("step_*.pt"))) == 3


@pytest.mark.slow
def test_cartpole_learns(tmp_path, capsys):
    """Random play scores about 22; within 75k steps (defaults, seed 1) the mean of the last 20 episodes must
    pass 300 (measured here: 483 with 2 threads, 493 with 1)."""
    log_dir = tmp_path / "runs"
    main.main(["--total-timesteps", "75000", "--log-dir", str(log_dir), "--no-progress"])
    returns = [value for _, value in read_scalars(only_run_dir(log_dir))["charts/episodic_return"]]
    assert sum(returns[-20:]) / 20 >= 300, returns[-20:]


def test_async_backend_gives_the_same_training_as_sync(tmp_path):
    weights = [torch.load(run_main(tmp_path / backend, "--total-timesteps", "512", "--vec-backend", backend)
                          / "model.pt", weights_only=False)["model"] for backend in ("sync", "async")]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_deterministic_torch_runs_with_deterministic_algorithms(tmp_path):
    # In a subprocess: the switch is process-wide and must not leak into the other tests.
    code = ("import sys, torch, main; rc = main.main(sys.argv[1:]); "
            "assert torch.are_deterministic_algorithms_enabled(); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, "--deterministic-torch", "--total-timesteps", "256",
                             "--no-progress", "--log-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (only_run_dir(tmp_path / "runs") / "model.pt").exists()


@pytest.mark.parametrize("flags,threads", [([], 1), (["--cpu-threads", "2"], 2)])
def test_training_runs_on_the_chosen_cpu_threads_and_restores_them(flags, threads, tmp_path, monkeypatch):
    """main.py trains its small MLP on one thread by default (waking a second costs more than its ops take)."""
    seen = set()
    forward = MLPActorCritic.forward

    def spy(self, obs):
        seen.add(torch.get_num_threads())
        return forward(self, obs)

    monkeypatch.setattr(MLPActorCritic, "forward", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # neither 1 nor 2, so that the run can only have taken its count from the flag
    try:
        run_main(tmp_path, "--total-timesteps", "128", *flags)
        assert seen == {threads}
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)

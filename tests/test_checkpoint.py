"""Checkpoints, --resume, and stopping on Ctrl-C / SIGTERM."""

import copy
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, only_run_dir, read_scalars

import main
import main_atari
import ppo.runner
from ppo import checkpoint

# 2 envs × 64 steps: a batch of 128, so 2048 steps are 16 updates.
SMALL = ["--num-envs", "2", "--num-steps-collected", "64", "--num-mini-batches", "2", "--no-progress"]


def train(tmp_path, *flags, entry=main.main):
    log_dir = tmp_path / "runs"
    assert entry([*SMALL, "--log-dir", str(log_dir), *flags]) == 0
    return only_run_dir(log_dir)


def steps_of(run_dir):
    return [int(p.stem.removeprefix("step_")) for p in checkpoint.checkpoints_in(run_dir)]


def test_default_is_ten_checkpoints_per_run_and_the_newest_are_kept(tmp_path):
    run_dir = train(tmp_path, "--total-timesteps", "2048", "--keep-checkpoints", "20")
    assert steps_of(run_dir) == [128 * k for k in (2, 4, 6, 8, 10, 12, 14, 16)]  # every ceil(16/10) = 2 updates

    run_dir = train(tmp_path / "b", "--total-timesteps", "2048", "--save-every", "3", "--keep-checkpoints", "2")
    # Written at updates 3, 6, 9, 12, 15 and at the end (16); only the newest two remain, and no temporary file.
    assert steps_of(run_dir) == [128 * 15, 128 * 16]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step_000000001920.pt", "step_000000002048.pt"]


def test_checkpoint_holds_the_full_training_state_and_loads_without_pickled_code(tmp_path):
    run_dir = train(tmp_path, "--environment-id", "Pendulum-v1", "--total-timesteps", "1024")
    saved = torch.load(checkpoint.checkpoints_in(run_dir)[-1], weights_only=True)
    assert saved["global_step"] == 1024 and saved["update"] == 8 and saved["script"] == "main"
    assert saved["args"]["environment_id"] == "Pendulum-v1"
    assert {"torch", "numpy", "gymnasium", "python"} <= saved["versions"].keys()
    assert saved["optimizer"]["state"] and saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2.5e-4 / 8)
    assert saved["obs_rms"]["mean"].shape == (3,) and saved["reward_rms"]["count"] > 1000
    assert {"python", "numpy", "torch"} <= saved["rng"].keys()
    final = torch.load(run_dir / "model.pt", weights_only=True)  # the final agent: no optimizer state
    assert "optimizer" not in final
    for key, value in final["model"].items():
        assert torch.equal(value, saved["model"][key])


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "step.pt"
    checkpoint.write_atomically({"model": {"w": torch.ones(3)}}, path)

    def dies_half_way(payload, file):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("killed")

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(OSError):
        checkpoint.write_atomically({"model": {"w": torch.zeros(3)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.ones(3))


def test_resume_restores_the_saved_state_exactly_and_ends_at_the_total(tmp_path, monkeypatch):
    run_dir = train(tmp_path, "--environment-id", "Pendulum-v1", "--total-timesteps", "2048", "--save-every", "4",
                    "--keep-checkpoints", "10")
    middle = run_dir / "checkpoints" / "step_000000001024.pt"
    saved = torch.load(middle, weights_only=True)

    seen = {}
    real_train = ppo.runner.train

    def spy(envs, state, *args, **kwargs):  # the state exactly as resume hands it to the loop
        seen["state"] = copy.deepcopy(state)
        seen["torch_rng"] = torch.get_rng_state()
        return real_train(envs, state, *args, **kwargs)

    monkeypatch.setattr(ppo.runner, "train", spy)
    assert main.main(["--resume", str(middle), "--no-progress"]) == 0
    state = seen["state"]

    assert (state.update, state.global_step) == (8, 1024)
    for key, value in state.agent.state_dict().items():
        assert torch.equal(value, saved["model"][key]), key
    optimizer = state.optimizer.state_dict()
    assert optimizer["param_groups"][0]["lr"] == saved["optimizer"]["param_groups"][0]["lr"]
    for index, moments in saved["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(optimizer["state"][index][name], value), (index, name)
    for normalizer, key in ((state.obs_normalizer, "obs_rms"), (state.reward_scaler, "reward_rms")):
        assert (normalizer.rms.mean == saved[key]["mean"].numpy()).all()
        assert (normalizer.rms.var == saved[key]["var"].numpy()).all()
        assert normalizer.rms.count == saved[key]["count"]
    assert torch.equal(seen["torch_rng"], saved["rng"]["torch"])

    # Same run directory, ends at the total, TensorBoard steps continue (what the first run logged after the
    # checkpoint is purged), the learning-rate schedule goes on from update 8.
    assert only_run_dir(tmp_path / "runs") == run_dir
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 2048
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["charts/SPS"]] == [128 * k for k in range(1, 17)]
    learning_rates = [value for _, value in scalars["charts/learning_rate"]]
    # TensorBoard stores float32: one rounding of each float64 rate (6e-8 relative), within approx's 1e-6.
    assert learning_rates == pytest.approx([2.5e-4 * (1 - k / 16) for k in range(16)])


def test_resume_from_the_run_directory_takes_the_newest_checkpoint(tmp_path, capsys):
    run_dir = train(tmp_path, "--total-timesteps", "2048", "--save-every", "4")
    for late in checkpoint.checkpoints_in(run_dir)[-2:]:  # as if the run had been killed after update 8
        late.unlink()
    (run_dir / "model.pt").unlink()
    capsys.readouterr()
    assert main.main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert "2,048 steps (resumed at 1,024)" in capsys.readouterr().out
    assert steps_of(run_dir)[-1] == 2048 and (run_dir / "model.pt").is_file()


def test_resume_of_an_atari_run(tmp_path):
    run_dir = train(tmp_path, "--environment-id", "ALE/Pong-v5", "--total-timesteps", "512", "--save-every", "2",
                    entry=main_atari.main)  # 2 envs × 64 steps: 4 updates
    first = checkpoint.checkpoints_in(run_dir)[0]
    assert first.name == "step_000000000256.pt"
    for later in checkpoint.checkpoints_in(run_dir)[1:]:
        later.unlink()
    assert main_atari.main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 512


def test_resume_keeps_the_atari_backend(tmp_path, monkeypatch):
    """The backends differ in what the agent sees (docs/atari.md): a run continues on its own."""
    run_dir = train(tmp_path, "--environment-id", "ALE/Pong-v5", "--total-timesteps", "256", "--save-every", "1",
                    "--env-backend", "gymnasium", entry=main_atari.main)
    checkpoint.checkpoints_in(run_dir)[-1].unlink()
    backends = []
    make_atari_envs = main_atari.make_atari_envs
    monkeypatch.setattr(main_atari, "make_atari_envs",
                        lambda *args, **kwargs: backends.append(args[-1]) or make_atari_envs(*args, **kwargs))
    assert main_atari.main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert backends == ["gymnasium"]  # not auto's ale-vector


def assert_resume_refused(entry, prog, flags, mentions, tmp_path, capsys):
    before = sorted(tmp_path.rglob("*"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        entry([*flags, "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{prog}: error: argument --resume"), err
    assert mentions in err, err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    run_dir = train(tmp_path, "--total-timesteps", "1024", "--save-every", "4")
    middle = str(checkpoint.checkpoints_in(run_dir)[0])
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "half.pt").write_bytes(checkpoint.checkpoints_in(run_dir)[-1].read_bytes()[:2000])
    cases = [
        (main.main, "main.py", ["--resume", str(tmp_path / "garbage.pt")], "cannot read checkpoint"),
        (main.main, "main.py", ["--resume", str(tmp_path / "half.pt")], "cannot read checkpoint"),
        (main.main, "main.py", ["--resume", str(tmp_path / "missing")], "does not exist"),
        (main.main, "main.py", ["--resume", str(tmp_path)], "not a run directory"),
        (main.main, "main.py", ["--resume", str(run_dir)], "already finished"),
        (main.main, "main.py", ["--resume", str(run_dir / "model.pt")], "final model, not a checkpoint"),
        (main.main, "main.py", ["--resume", middle, "--learning-rate", "1e-3"], "--learning-rate"),
        (main.main, "main.py", ["--resume", middle, "--bf16"], "--bf16"),
        (main.main, "main.py", ["--resume", middle, "--vec-backend", "async"], "--vec-backend"),
        (main_atari.main, "main_atari.py", ["--resume", middle], "a main.py run"),
    ]
    for entry, prog, flags, mentions in cases:
        assert_resume_refused(entry, prog, flags, mentions, tmp_path, capsys)


def start_long_run(tmp_path, *flags):
    """A CartPole run far too long to finish, started from the shell; returns (process, run dir)."""
    log_dir = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--total-timesteps", "1e7", "--log-dir",
                                str(log_dir), "--no-progress", *flags], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(log_dir.glob("*/events.out.tfevents.*")):
        time.sleep(0.2)
    time.sleep(1.5)  # a few updates in
    return process, only_run_dir(log_dir)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_with_a_checkpoint_and_the_command_that_resumes_it(tmp_path, signum):
    process, run_dir = start_long_run(tmp_path)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    stopped_at = steps_of(run_dir)[-1]
    assert 0 < stopped_at < 10**7 and stopped_at % 512 == 0
    assert f"checkpoint at step {stopped_at:,}" in out
    assert not (run_dir / "model.pt").exists()  # the run is not finished
    command = out.strip().splitlines()[-1]
    assert command == f"resume with: python main.py --resume {run_dir}"

    if signum == signal.SIGINT:  # the printed command continues the run, past the checkpoint
        resume = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *command.split()[4:], "--no-progress"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        deadline = time.monotonic() + 60  # the resumed run opens a second events file in the same directory
        while time.monotonic() < deadline and len(list(run_dir.glob("events.out.tfevents.*"))) < 2:
            time.sleep(0.2)
        time.sleep(1.5)  # a few updates in
        resume.send_signal(signal.SIGTERM)
        out, err = resume.communicate(timeout=60)
        assert resume.returncode == 130, err
        assert f"(resumed at {stopped_at:,})" in out
        assert steps_of(run_dir)[-1] > stopped_at


WRITER = """
import sys, torch
from pathlib import Path
from ppo import checkpoint
run_dir = Path(sys.argv[1])
payload = torch.load(checkpoint.checkpoints_in(run_dir)[-1], weights_only=True)
payload["padding"] = torch.ones(25_000_000)  # 100 MB: long enough a write to be killed in the middle of it
writer = checkpoint.CheckpointWriter(run_dir, keep=3)
step = payload["global_step"]
while True:
    payload["global_step"] = step = step + 1
    writer.save(payload)
"""


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_checkpoint_write_loses_nothing(tmp_path):
    """A real writer process killed while a checkpoint file is half written: every checkpoint under its name
    still loads, and --resume continues the run."""
    run_dir = train(tmp_path, "--total-timesteps", "1024", "--save-every", "2")
    (run_dir / "model.pt").unlink()
    for survivor in checkpoint.checkpoints_in(run_dir)[1:]:
        survivor.unlink()  # a run stopped after 2 updates, whose writer goes on writing (bigger) checkpoints
    kills_mid_write = 0
    for completed in range(3):  # killed during the first write, the second, the third
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir)], cwd=ROOT)
        before = set(checkpoint.checkpoints_in(run_dir))
        deadline = time.monotonic() + 120
        partial = []
        while time.monotonic() < deadline and not partial:
            written = len(set(checkpoint.checkpoints_in(run_dir)) - before)
            if written >= completed:
                partial = [p for p in (run_dir / checkpoint.CHECKPOINT_DIR).glob(".step_*.tmp") if p.stat().st_size]
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills_mid_write += bool(partial)
        for path in checkpoint.checkpoints_in(run_dir):
            assert torch.load(path, weights_only=True)["script"] == "main", path
    assert kills_mid_write == 3
    assert main.main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert torch.load(run_dir / "model.pt", weights_only=True)["update"] == 8  # 1024 steps of 128
    assert not list((run_dir / checkpoint.CHECKPOINT_DIR).glob(".*.tmp"))  # the killed writes' leftovers


def test_a_finished_run_extended_goes_on_in_the_same_directory(tmp_path, capsys):
    """--resume RUN --total-timesteps N past the saved step: one run directory, TensorBoard steps once each, the
    learning rate on from the last update's and annealed towards 0 at N."""
    run_dir = train(tmp_path, "--total-timesteps", "1024", "--save-every", "4")  # 8 updates of 128
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "2048", "--no-progress"]) == 0
    assert only_run_dir(tmp_path / "runs") == run_dir
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 2048
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["charts/SPS"]] == [128 * k for k in range(1, 17)]
    rates = [value for _, value in scalars["charts/learning_rate"]]
    assert rates[:8] == pytest.approx([2.5e-4 * (1 - k / 8) for k in range(8)])
    last = 2.5e-4 / 8  # what update 8 used; from there towards 0 at update 16
    assert rates[8:] == pytest.approx([last * (1 - k / 9) for k in range(1, 9)])
    # Extended runs resume and extend again; fewer steps than done is refused with one line.
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "2304", "--no-progress"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--resume", str(run_dir), "--total-timesteps", "2000", "--no-progress"])
    assert exit_info.value.code == 2
    assert "argument --total-timesteps: the run is at step 2,304" in capsys.readouterr().err

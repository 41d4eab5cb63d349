"""python -m ppo.tune: short Optuna studies on CartPole, each trial a real run of main.py."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import ROOT, only_run_dir

import main
from ppo import tune

SHORT = ["--environment-id", "CartPole-v1", "--total-timesteps", "2048"]


def tune_command(study_dir, *flags: str) -> list[str]:
    return [sys.executable, "-m", "ppo.tune", *SHORT, "--study-dir", str(study_dir), *flags]


def load(study_dir):
    return optuna.load_study(study_name="CartPole-v1__main", storage=f"sqlite:///{study_dir}/study.db")


def states(study) -> dict[str, int]:
    return tune.trial_states(study)


def test_a_short_study_completes_goes_on_and_its_command_runs(tmp_path):
    study_dir = tmp_path / "study"
    first = subprocess.run(tune_command(study_dir, "--trials", "3", "--", "--num-envs", "2"), capture_output=True,
                           text=True, cwd=ROOT, timeout=600)
    assert first.returncode == 0, first.stderr
    assert (study_dir / "study.db").is_file()
    best = json.loads((study_dir / "best.json").read_text())
    study = load(study_dir)
    assert tune.finished(study) == 3 and best["value"] == study.best_value
    assert best["command"] in first.stdout and "--num-envs 2" in best["command"]  # fixed flags kept
    # every completed trial a run of its own under the study's directory, with its evaluations and events
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            run = only_run_dir(study_dir / "trials" / f"trial_{trial.number:04d}" / "seed_1")
            assert (run / "evaluations.csv").is_file() and list(run.glob("events.out.tfevents.*"))
    # a fixed flag is never searched
    assert all("--num-envs" not in t.user_attrs.get("flags", []) for t in study.trials)
    second = subprocess.run(tune_command(study_dir, "--trials", "5", "--", "--num-envs", "2"), capture_output=True,
                            text=True, cwd=ROOT, timeout=600)
    assert second.returncode == 0, second.stderr
    assert tune.finished(load(study_dir)) == 5  # two more, the first three kept
    # the printed command trains (shortened here)
    command = shlex.split(json.loads((study_dir / "best.json").read_text())["command"])
    assert command[:2] == ["python", "main.py"]
    assert main.main([*command[2:], "--total-timesteps", "1024", "--no-progress", "--log-dir",
                      str(tmp_path / "runs")]) == 0
    assert (only_run_dir(tmp_path / "runs") / "model.pt").is_file()
    shown = subprocess.run([sys.executable, "-m", "ppo.tune", "--study-name", "CartPole-v1__main", "--storage",
                            f"sqlite:///{study_dir}/study.db", "--show"], capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0 and "best: trial" in shown.stdout


def test_a_trial_whose_env_raises_is_failed_with_its_reason_and_the_study_goes_on(tmp_path):
    study_dir = tmp_path / "study"
    run = subprocess.run([sys.executable, "-m", "ppo.tune", "--environment-id", "tests.crashing_env:CrashingAlways-v0",
                          "--total-timesteps", "1024", "--trials", "2", "--study-dir", str(study_dir), "--",
                          "--num-envs", "2"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="tests.crashing_env:CrashingAlways-v0__main",
                              storage=f"sqlite:///{study_dir}/study.db")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) + states(study)["pruned"] == 2 and failed  # both counted; the study did not stop at one
    assert all("this env always breaks" in t.user_attrs["error"] for t in failed)
    assert "failed: " in run.stdout and "no trial completed yet" in run.stdout


def test_a_minibatch_above_the_batch_is_the_whole_batch():
    study = optuna.create_study()
    study.enqueue_trial({"num_steps_collected": 32, "minibatch_size": 512})
    flags = tune.sample(study.ask(), ["--num-envs", "2"], "main.py", 2)
    assert flags[flags.index("--num-mini-batches") + 1] == "1"  # 2 × 32 = 64 samples: one minibatch, not pruned
    study.enqueue_trial({"minibatch_size": 64})
    flags = tune.sample(study.ask(), ["--num-steps-collected", "256"], "main.py", 4)  # a fixed length counts
    assert "--num-steps-collected" not in flags and flags[flags.index("--num-mini-batches") + 1] == "16"
    study.enqueue_trial({"num_steps_collected": 32, "minibatch_size": 64})
    with pytest.raises(optuna.TrialPruned):  # 3 × 32 = 96 does not split into 64s
        tune.sample(study.ask(), ["--num-envs", "3"], "main.py", 3)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_a_study_stopped_mid_trial_goes_on_with_the_same_command(signum, tmp_path):
    study_dir = tmp_path / "study"
    flags = ["--trials", "2", "--study-dir", str(study_dir), "--", "--num-envs", "2"]
    command = [sys.executable, "-m", "ppo.tune", "--environment-id", "CartPole-v1", "--total-timesteps", "60000",
               *flags]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((study_dir / "trials").glob("trial_0000/seed_1/*/events.out.tfevents.*")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(process.pid, signum)  # as a terminal's Ctrl-C, or a lost machine
    process.communicate(timeout=60)
    if signum == signal.SIGKILL:  # its heartbeat stops: the next process fails it once the grace period passed
        time.sleep(tune.GRACE_SECONDS + tune.HEARTBEAT_SECONDS)
    other_budget = [sys.executable, "-m", "ppo.tune", "--environment-id", "CartPole-v1", "--total-timesteps", "1024",
                    *flags]
    refused = subprocess.run(other_budget, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert refused.returncode == 2 and "total_timesteps" in refused.stderr  # the study keeps its budget
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert again.returncode == 0, again.stderr
    study = load(study_dir)
    assert states(study)["interrupted"] == 1 and tune.finished(study) == 2, (  # none lost, none run twice
        states(study), [(t.number, t.state.name, t.user_attrs.get("error")) for t in study.trials])
    assert study.trials[0].state == optuna.trial.TrialState.FAIL and "error" not in study.trials[0].user_attrs


@pytest.mark.parametrize("flags, mentions", [
    (["--environment-id", "CartPole-v1", "--trials", "0"], "--trials"),
    (["--environment-id", "CartPole-v1", "--script", "other.py"], "--script"),
    (["--environment-id", "CartPole-v1", "--storage", "nosuchdb://x"], "--storage"),
])
def test_bad_tune_input_is_one_line(flags, mentions, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ppo.tune", *flags, "--study-dir", str(tmp_path / "s")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and mentions in result.stderr, result.stderr


def test_a_study_name_that_tunes_another_env_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path}/shared.db"
    optuna.create_study(study_name="mine", storage=storage).set_user_attr("environment_id", "Acrobot-v1")
    result = subprocess.run([sys.executable, "-m", "ppo.tune", *SHORT, "--study-name", "mine", "--storage", storage,
                             "--study-dir", str(tmp_path / "s")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Acrobot-v1" in result.stderr and result.stderr.count("\n") == 1


def test_a_ctrl_c_that_left_a_trial_running_fails_only_this_processes_trials():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    mine, _another_machines = study.ask(), study.ask()
    done = study.ask()
    study.tell(done, 1.0)
    tune.fail_left_running(study, {mine.number, done.number})
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING,
                                               optuna.trial.TrialState.COMPLETE]
    assert states(study)["interrupted"] == 1

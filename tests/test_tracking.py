import argparse
import gc
import os
import sys

import numpy as np
import pytest
from conftest import TAGS, only_run_dir, read_scalars

from ppo.tracking import RunLogger


def test_run_logger_writes_each_episode_and_update_scalar_at_its_step(tmp_path):
    logger = RunLogger(tmp_path / "run", argparse.Namespace(seed=1), total_steps=64, show_progress=False)
    logger.episodes_finished(10, np.array([1.5, 2.5]), np.array([7, 9]))  # two envs finish at the same step
    logger.episodes_finished(12, np.array([3.0]), np.array([4]))
    logger.update_finished(16, {"policy_loss": -0.25, "clipfrac": 0.125}, learning_rate=2.5e-4, sps=1000.0)
    logger.close(16, 16, 1.0)
    scalars = read_scalars(tmp_path / "run")
    assert scalars["charts/episodic_return"] == [(10, 1.5), (10, 2.5), (12, 3.0)]
    assert scalars["charts/episodic_length"] == [(10, 7.0), (10, 9.0), (12, 4.0)]
    assert scalars["losses/policy_loss"] == [(16, -0.25)] and scalars["losses/clipfrac"] == [(16, 0.125)]
    assert scalars["charts/SPS"] == [(16, 1000.0)]
    assert scalars["charts/learning_rate"] == [(16, pytest.approx(2.5e-4))]  # stored as float32
    assert logger.episodes == 3 and logger.mean_recent_return == pytest.approx(7.0 / 3)


def test_events_are_written_by_a_child_process_that_a_ctrl_c_does_not_reach(tmp_path):
    logger = RunLogger(tmp_path / "run", argparse.Namespace(seed=1), total_steps=64, show_progress=False)
    child = logger.events.pid
    assert child != os.getpid() and os.getsid(child) != os.getsid(0)  # its own session: no terminal's SIGINT
    logger.update_finished(8, {"policy_loss": 0.5}, learning_rate=1e-3, sps=10.0)
    logger.close(8, 8, 1.0)
    assert logger.events.returncode == 0
    assert read_scalars(tmp_path / "run")["losses/policy_loss"] == [(8, 0.5)]


def test_training_goes_on_when_the_event_writer_is_gone(tmp_path, capsys):
    logger = RunLogger(tmp_path / "run", argparse.Namespace(seed=1), total_steps=64, show_progress=False)
    logger.events.kill()
    logger.events.wait()
    for step in range(1, 200):  # enough to fill the pipe's buffer and flush into the closed pipe
        logger.episodes_finished(step, np.array([float(step)]), np.array([step]))
        logger.update_finished(step, {"policy_loss": 0.5}, learning_rate=1e-3, sps=10.0)
    assert logger.episodes == 199
    logger.close(199, 199, 1.0)
    del logger  # nothing left to flush into the broken pipe at garbage collection
    gc.collect()
    err = capsys.readouterr().err
    assert err.count("TensorBoard events") == 1 and err.startswith("warning: TensorBoard events are no longer written")
    assert "Exception ignored" not in err


def test_track_offline_mirrors_the_run_into_its_directory(tmp_path, monkeypatch, capsys):
    """WANDB_MODE=offline: W&B writes its run into <run dir>/wandb; the scalars TensorBoard gets, the evaluation
    table and the flags (its config) are in it."""
    import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    assert main.main(["--track", "--total-timesteps", "2048", "--eval-every", "1024", "--no-progress",
                      "--log-dir", str(tmp_path / "runs")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("2,048 steps")  # the summary stays last
    run_dir = only_run_dir(tmp_path / "runs")
    (records,) = list((run_dir / "wandb").glob(f"offline-run-*-{run_dir.name.replace(':', '-')}/run-*.wandb"))
    data = records.read_bytes()
    for key in (*TAGS, "eval/mean_return", "eval/table", "global_step", "gae_lambda", run_dir.name):
        assert key.encode() in data, key


def test_track_without_wandb_is_one_line(tmp_path, monkeypatch, capsys):
    import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--track", "--log-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "requirements-track.txt" in err and not (tmp_path / "runs").exists()

import argparse

import numpy as np
import pytest
from conftest import read_scalars

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

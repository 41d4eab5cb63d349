"""Running observation normalization and reward scaling for continuous control.

Gymnasium's vector NormalizeObservation refuses SAME_STEP autoreset (it could not normalize ``final_obs``), and
its per-env twin keeps one set of statistics per env. The training loop needs one set of statistics for all envs,
applied to both the observation and the final observation it bootstraps a truncation from, and saved with the
model; so the loop applies these itself. Same formulas as Gymnasium's wrappers and SB3's VecNormalize.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _clip(x: np.ndarray, bound: float) -> np.ndarray:
    """np.clip(x, -bound, bound), NaN included, without np.clip's Python wrapper (this runs once per env step)."""
    return np.minimum(np.maximum(x, -bound), bound)


def batch_moments(batch: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance along ``axis``, as sum/n rather than mean()/var(): the same numbers without
    NumPy's reduction wrappers, which cost more than the arithmetic on a step's few values (once per env step)."""
    count = batch.shape[axis]
    mean = batch.sum(axis=axis, keepdims=True) / count
    return mean.squeeze(axis), np.square(batch - mean).sum(axis=axis) / count


def combine_moments(mean, var, count, batch_mean, batch_var, batch_count):
    """Mean, variance and count of two sets together, from each set's (parallel algorithm of Chan et al.).
    Elementwise, for arrays and plain floats alike (the same IEEE arithmetic either way)."""
    delta = batch_mean - mean
    total = count + batch_count
    m2 = var * count + batch_var * batch_count + delta**2 * count * batch_count / total
    return mean + delta * batch_count / total, m2 / total, total


class RunningMeanStd:
    """Mean and variance over a stream of batches (parallel algorithm of Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, batch: np.ndarray) -> None:
        self.mean, self.var, self.count = combine_moments(self.mean, self.var, self.count, *batch_moments(batch),
                                                          batch.shape[0])

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.array(state["mean"], np.float64)
        self.var = np.array(state["var"], np.float64)
        self.count = float(state["count"])


def same(array: np.ndarray) -> np.ndarray:
    return array


class ObservationNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped to ±clip; statistics updated from each batch of observations.

    ``gather_rows`` gives the batch the statistics are updated with: under torchrun every rank's observations of
    the step (ppo/distributed.py), so the statistics are the same on every rank."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8,
                 gather_rows: Callable[[np.ndarray], np.ndarray] = same) -> None:
        self.rms = RunningMeanStd(shape)
        self.clip = clip
        self.epsilon = epsilon
        self.gather_rows = gather_rows

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update:
            self.rms.update(self.gather_rows(obs))
        scaled = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)
        return _clip(scaled, self.clip).astype(np.float32)


class RewardScaler:
    """Divides rewards by the running std of the discounted return, per env, as Gymnasium's NormalizeReward.
    ``gather_rows``: as for ObservationNormalizer, every rank's returns of each step update the variance."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8,
                 gather_rows: Callable[[np.ndarray], np.ndarray] = same) -> None:
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        self.gather_rows = gather_rows

    def scale(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The rewards of consecutive steps, [steps, num_envs], scaled as one step after another would be: each
        step's discounted returns (restarted after a done) update the running variance, then that step's rewards
        are divided by its std. ``valid`` False marks the reset step of a NEXT_STEP vector env: not part of any
        episode's return.

        The training loop calls this once per rollout: the per-step arithmetic is the same (a test checks the
        numbers are those of step-by-step calls, to the bit), but the steps' batch moments are computed in a few
        array operations, and the two recursions (returns along each env, running moments along the steps) on
        Python floats: the same IEEE double arithmetic as NumPy's, without NumPy's per-call cost on a step's few
        numbers."""
        gamma, columns, ends = self.gamma, [], []
        for total, reward_column, done_column in zip(self.returns.tolist(), rewards.T.tolist(), dones.T.tolist(),
                                                     strict=True):
            column = []  # one env's discounted returns, step after step
            for reward, done in zip(reward_column, done_column, strict=True):
                total = total * gamma + reward
                column.append(total)
                if done:
                    total = 0.0
            columns.append(column)
            ends.append(total)
        self.returns = np.array(ends, np.float64)
        by_env = np.array(columns, np.float64)  # [env, step]
        if self.gather_rows is not same:  # every rank's envs as more rows: [env of all ranks, step]
            by_env = self.gather_rows(by_env)
            counted = np.ones(rewards.shape, bool) if valid is None else valid  # every rank gathers the same
            valid = self.gather_rows(np.ascontiguousarray(counted.T, np.uint8)).T.astype(bool)
        returns = np.ascontiguousarray(by_env.T)  # [step, env]

        means, variances = batch_moments(returns, axis=1)  # each step's row, as RunningMeanStd.update takes it
        rms = self.rms
        mean, var, count = float(rms.mean), float(rms.var), rms.count
        stds = []
        for step, (batch_mean, batch_var) in enumerate(zip(means.tolist(), variances.tolist(), strict=True)):
            if valid is None or valid[step].all():
                mean, var, count = combine_moments(mean, var, count, batch_mean, batch_var, returns.shape[1])
            elif valid[step].any():
                counted = returns[step][valid[step]]
                batch_mean, batch_var = batch_moments(counted)
                mean, var, count = combine_moments(mean, var, count, float(batch_mean), float(batch_var),
                                                   len(counted))
            stds.append(math.sqrt(var + self.epsilon))
        rms.mean, rms.var, rms.count = np.float64(mean), np.float64(var), count
        return _clip(rewards / np.array(stds)[:, None], self.clip).astype(np.float32)

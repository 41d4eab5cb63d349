"""Running observation normalization and reward scaling for continuous control.

Gymnasium's vector NormalizeObservation refuses SAME_STEP autoreset (it could not normalize ``final_obs``), and
its per-env twin keeps one set of statistics per env. The training loop needs one set of statistics for all envs,
applied to both the observation and the final observation it bootstraps a truncation from, and saved with the
model; so the loop applies these itself. Same formulas as Gymnasium's wrappers and SB3's VecNormalize.
"""

from __future__ import annotations

import numpy as np


def _clip(x: np.ndarray, bound: float) -> np.ndarray:
    """np.clip(x, -bound, bound), NaN included, without np.clip's Python wrapper (1.4 -> 0.8 µs on a step's
    few values; these run once per env step)."""
    return np.minimum(np.maximum(x, -bound), bound)


def batch_moments(batch: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance along ``axis``, as sum/n rather than mean()/var(): the same numbers without
    NumPy's reduction wrappers (≈ 2x faster on the few values of a step, where this runs once per env step)."""
    count = batch.shape[axis]
    mean = batch.sum(axis=axis, keepdims=True) / count
    return mean.squeeze(axis), np.square(batch - mean).sum(axis=axis) / count


class RunningMeanStd:
    """Mean and variance over a stream of batches (parallel algorithm of Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, batch: np.ndarray) -> None:
        self.update_from_moments(*batch_moments(batch), batch.shape[0])

    def update_from_moments(self, batch_mean: np.ndarray | float, batch_var: np.ndarray | float,
                            batch_count: int) -> None:
        """``update`` with a batch's mean and (population) variance already computed."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.array(state["mean"], np.float64)
        self.var = np.array(state["var"], np.float64)
        self.count = float(state["count"])


class ObservationNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped to ±clip; statistics updated from each batch of observations."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.rms = RunningMeanStd(shape)
        self.clip = clip
        self.epsilon = epsilon

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update:
            self.rms.update(obs)
        scaled = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)
        return _clip(scaled, self.clip).astype(np.float32)


class RewardScaler:
    """Divides rewards by the running std of the discounted return, per env, as Gymnasium's NormalizeReward."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon

    def scale(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The rewards of consecutive steps, [steps, num_envs], scaled as one step after another would be: each
        step's discounted returns (restarted after a done) update the running variance, then that step's rewards
        are divided by its std. ``valid`` False marks the reset step of a NEXT_STEP vector env: not part of any
        episode's return.

        The training loop calls this once per rollout: the per-step arithmetic is the same, but the steps'
        batch moments are computed in a few array operations instead of a dozen NumPy calls per step (a CartPole
        rollout step 5.5 -> 1.9 µs; a test checks the numbers are those of step-by-step calls)."""
        returns = np.empty(rewards.shape, np.float64)
        running = self.returns
        for step in range(len(rewards)):
            running = running * self.gamma + rewards[step]
            returns[step] = running
            running[dones[step]] = 0.0
        self.returns = running

        means, variances = batch_moments(returns, axis=1)  # each step's row, as RunningMeanStd.update takes it
        stds = np.empty(len(rewards))
        for step in range(len(rewards)):
            if valid is None or valid[step].all():
                self.rms.update_from_moments(means[step], variances[step], returns.shape[1])
            elif valid[step].any():
                self.rms.update(returns[step][valid[step]])
            stds[step] = np.sqrt(self.rms.var + self.epsilon)
        return _clip(rewards / stds[:, None], self.clip).astype(np.float32)

"""Faults in training: an env that raises, and non-finite values, found cheaply (once per rollout and per
update, vectorized) and reported once.

A NaN or an infinity in a reward, an observation, the loss or the gradient would spread to the normalization
statistics and then to every weight, and the rotating checkpoints would replace every good one with it. The loop
checks each rollout before its rewards are scaled and each update before it is checkpointed, and stops at the
first non-finite value; nothing is written after it (test_faults.py).
"""

from __future__ import annotations

import numpy as np
import torch

from ppo.buffer import RolloutBuffer


class EnvError(Exception):
    """The env raised (the user's env, usually): the original exception is ``__cause__``. ``global_step``: the env
    steps before the failed call, set by the rollout (None for the reset before the first update)."""

    def __init__(self) -> None:
        super().__init__()
        self.global_step: int | None = None


class NonFiniteError(Exception):
    def __init__(self, what: str, global_step: int, env: int | None = None) -> None:
        where = f" (env {env})" if env is not None else ""
        super().__init__(f"non-finite {what} at step {global_step:,}{where}")


def _first(bad: np.ndarray) -> tuple[int, int]:
    """(step, env) of the first True of a [steps, envs] mask, in the order the steps happened."""
    step, env = np.argwhere(bad)[0]
    return int(step), int(env)


def rollout_fault(buffer: RolloutBuffer, global_step: int, steps_per_step: int | None = None
                  ) -> NonFiniteError | None:
    """The first non-finite value among the rollout's rewards, stored observations and bootstrap values (from
    final observations), to be raised before any of them is used; None if all are finite. ``global_step``: env
    steps before this rollout; ``steps_per_step``: env steps one step of the rollout counts (all ranks' envs)."""
    steps_per_step = steps_per_step or buffer.num_envs
    # (what, [steps, envs] mask, 1 where row t was made by the rollout's step t, 0 where by the step before it)
    checks = [("reward", ~np.isfinite(buffer.rewards), 1)]
    if buffer.obs.is_floating_point():
        checks.append(("observation", (~torch.isfinite(buffer.obs)).flatten(2).any(-1).cpu().numpy(), 0))
    final_values = (~torch.isfinite(buffer.final_values)).cpu().numpy()
    checks.append(("observation (a truncated episode's last)", final_values, 1))
    for what, bad, made_by in checks:
        if bad.any():
            step, env = _first(bad)
            return NonFiniteError(what, global_step + (step + made_by) * steps_per_step, env)
    return None


def check_update(stats: dict[str, float], global_step: int) -> None:
    """An update's loss terms and gradient norm (means over its minibatch steps: one non-finite step makes them
    non-finite). ``global_step``: env steps including this update's rollout."""
    for what, keys in (("loss", ("policy_loss", "value_loss", "entropy")), ("gradient", ("grad_norm",))):
        if any(key in stats and not np.isfinite(stats[key]) for key in keys):
            raise NonFiniteError(what, global_step)


def check_weights(module: torch.nn.Module, global_step: int) -> None:
    """Before a checkpoint or model.pt is written: no file ever holds a non-finite weight."""
    if not all(torch.isfinite(tensor).all() for tensor in module.state_dict().values()):
        raise NonFiniteError("weight", global_step)

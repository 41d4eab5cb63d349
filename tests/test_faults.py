"""Non-finite values stop a run with one line, exit status 1, and nothing written after them."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import only_run_dir

import main
from ppo import checkpoint


class Faulty(gym.Env):
    """A one-dimensional walk that turns one value non-finite at its ``at``-th step in env 1 of 2 (the env whose
    first reset is seeded 2: seed 1 + env index 1)."""

    def __init__(self, fault: str = "reward", at: int = 200, render_mode=None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.fault, self.at = fault, at
        self.faulty = False
        self.steps = self.position = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.faulty = seed == 2
        self.position = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.steps += 1
        self.position += 1 if action else -1
        obs = np.array([self.position / 10, 1.0], np.float32)
        reward = float(action)
        if self.faulty and self.steps == self.at:
            if self.fault == "reward":
                reward = float("nan")
            elif self.fault == "observation":
                obs[0] = np.inf
            else:  # a finite reward whose square overflows float32 in the value loss
                reward = 3e38
        return obs, reward, False, abs(self.position) >= 10, {}


for fault in ("reward", "observation", "loss"):
    gym.register(f"Faulty{fault.title()}-v0", entry_point=Faulty, kwargs={"fault": fault})


@pytest.mark.parametrize("fault, what, flags", [
    ("reward", "non-finite reward at step 400 (env 1)", []),
    ("observation", "non-finite observation at step 400 (env 1)", []),
    ("loss", "non-finite loss at step 512", ["--no-normalize-reward"]),
])
def test_a_non_finite_value_stops_the_run_and_keeps_the_good_checkpoints(fault, what, flags, tmp_path, capsys):
    env_id = f"Faulty{fault.title()}-v0"
    code = main.main(["--environment-id", env_id, "--num-envs", "2", "--num-steps-collected", "64",
                      "--num-mini-batches", "2", "--total-timesteps", "2048", "--save-every", "1",
                      "--keep-checkpoints", "2", "--no-progress", "--log-dir", str(tmp_path), *flags])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {what} in {env_id}: training stopped"), err
    run_dir = only_run_dir(tmp_path)
    assert not (run_dir / "model.pt").exists()
    kept = checkpoint.checkpoints_in(run_dir)
    assert [p.name for p in kept] == ["step_000000000256.pt", "step_000000000384.pt"]  # the updates before it
    assert err[0].endswith(str(kept[-1]))
    for path in kept:
        saved = torch.load(path, weights_only=True)
        assert all(torch.isfinite(tensor).all() for tensor in saved["model"].values())
        assert all(torch.isfinite(value).all() for state in saved["optimizer"]["state"].values()
                   for value in state.values())


class Crashing(Faulty):
    """Raises in its ``at``-th step, in env 1 of 2 (the user's bug)."""

    def step(self, action):
        if self.faulty and self.steps + 1 == self.at and not Crashing.disarmed:
            raise RuntimeError("the user's env broke")
        return super().step(action)

    disarmed = False


gym.register("Crashing-v0", entry_point=Crashing, kwargs={"fault": "none"})


def test_an_env_that_raises_saves_the_last_update_shows_its_traceback_and_resumes(tmp_path, capsys):
    Crashing.disarmed = False
    flags = ["--num-envs", "2", "--num-steps-collected", "64", "--num-mini-batches", "2", "--no-progress"]
    code = main.main(["--environment-id", "Crashing-v0", *flags, "--total-timesteps", "1024", "--save-every", "100",
                      "--log-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "the user's env broke" in err and "in step" in err  # the env's own frames
    run_dir = only_run_dir(tmp_path)
    last, resume = err.strip().splitlines()[-2:]
    # The env failed in its 200th step (global step 398: 2 envs), in the 4th rollout: updates 1-3 are saved.
    assert last.startswith("error: Crashing-v0 raised RuntimeError: the user's env broke at step 398; checkpoint "
                           "of the last completed update (step 384): ")
    assert [p.name for p in checkpoint.checkpoints_in(run_dir)] == ["step_000000000384.pt"]
    assert resume == f"resume with: python main.py --resume {run_dir}"
    Crashing.disarmed = True  # the user fixed the env
    assert main.main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert torch.load(run_dir / "model.pt", weights_only=True)["global_step"] == 1024

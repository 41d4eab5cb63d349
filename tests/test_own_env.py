"""A user's own env, written in a file of their own and named as Gymnasium's ``module:Id``."""

import pytest
import torch
from conftest import only_run_dir

import main
from ppo import evaluate

MODULE = '''
import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right to the end of a corridor: +1 there, -0.01 a step. No render_mode argument, as in many envs."""

    def __init__(self, length=4):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        done = self.position == self.length
        return np.array([self.position / self.length], np.float32), 1.0 if done else -0.01, done, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=50)


class LitCorridor(Corridor):
    """The same corridor, with a render_mode argument and frames to record."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, length=4, render_mode=None):
        super().__init__(length)
        self.render_mode = render_mode

    def render(self):
        frame = np.zeros((16, 16 * (self.length + 1), 3), np.uint8)
        frame[:, 16 * self.position:16 * (self.position + 1)] = 255
        return frame


gym.register("LitCorridor-v0", entry_point=LitCorridor, max_episode_steps=50)
'''


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "corridor_envs.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)  # where the user runs main.py from: their module is there
    return tmp_path


def test_a_module_id_env_without_render_mode_trains_evaluates_and_resumes(user_dir, capsys):
    flags = ["--environment-id", "corridor_envs:Corridor-v0", "--num-envs", "2", "--num-steps-collected", "64",
             "--num-mini-batches", "2", "--no-progress", "--log-dir", str(user_dir / "runs")]
    assert main.main([*flags, "--total-timesteps", "4096", "--save-every", "8"]) == 0
    run_dir = only_run_dir(user_dir / "runs")
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert saved["env_id"] == "corridor_envs:Corridor-v0"
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "5", "--deterministic", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "5 episodes of corridor_envs:Corridor-v0" in out
    assert float(out.split("return ")[1].split(" ")[0]) > 0.9  # learned: 4 steps right, 1 - 0.03
    with pytest.raises(SystemExit) as exit_info:  # no frames to record: one line, no traceback
        evaluate.main([str(run_dir), "--capture-video", "--no-progress"])
    assert exit_info.value.code == 2 and "cannot render" in capsys.readouterr().err
    (run_dir / "model.pt").unlink()  # an unfinished run: its newest checkpoint is at 2048 steps
    for newest in sorted((run_dir / "checkpoints").glob("*.pt"))[1:]:
        newest.unlink()
    assert main.main(["--resume", str(run_dir), "--no-progress"]) == 0


def test_capture_video_on_an_env_that_cannot_render_is_refused(user_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--environment-id", "corridor_envs:Corridor-v0", "--capture-video", "--no-progress",
                   "--log-dir", str(user_dir / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --capture-video" in err[0] and "cannot render" in err[0], err
    assert not (user_dir / "runs").exists()


def test_a_module_that_cannot_be_imported(user_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--environment-id", "no_such_module:Corridor-v0", "--log-dir", str(user_dir / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import module 'no_such_module'" in err[0], err


def test_env_kwargs_reach_the_env_and_stay_with_the_run(user_dir, capsys):
    flags = ["--environment-id", "corridor_envs:Corridor-v0", "--num-envs", "2", "--num-steps-collected", "64",
             "--num-mini-batches", "2", "--no-progress", "--log-dir", str(user_dir / "runs")]
    assert main.main([*flags, "--total-timesteps", "512", "--save-every", "2", "--env-kwargs", "length=7"]) == 0
    run_dir = only_run_dir(user_dir / "runs")
    assert torch.load(run_dir / "model.pt", weights_only=True)["args"]["env_kwargs"] == [("length", 7)]
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "3", "--no-progress"]) == 0
    lengths = capsys.readouterr().out.split("length ")[1]
    assert float(lengths.split(" ")[0]) >= 7  # a corridor of 7 cells takes 7 steps at least
    checkpoints = sorted((run_dir / "checkpoints").glob("*.pt"))
    with pytest.raises(SystemExit) as exit_info:  # a resumed run keeps its env: another length is refused
        main.main(["--resume", str(checkpoints[0]), "--env-kwargs", "length=9", "--no-progress"])
    assert exit_info.value.code == 2 and "--env-kwargs" in capsys.readouterr().err


@pytest.mark.parametrize("value, mentions", [("length", "KEY=VALUE"), ("1x=2", "KEY=VALUE"),
                                             ("width=3", "does not take")])
def test_bad_env_kwargs_are_one_line(value, mentions, user_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--environment-id", "corridor_envs:Corridor-v0", "--env-kwargs", value, "--no-progress",
                   "--log-dir", str(user_dir / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --env-kwargs" in err[0] and mentions in err[0], err
    assert not (user_dir / "runs").exists()


def test_a_module_id_env_with_render_mode_records_videos(user_dir):
    assert main.main(["--environment-id", "corridor_envs:LitCorridor-v0", "--total-timesteps", "512",
                      "--capture-video", "--no-progress", "--log-dir", str(user_dir / "runs")]) == 0
    run_dir = only_run_dir(user_dir / "runs")
    videos = sorted((user_dir / "videos" / run_dir.name).glob("*.mp4"))
    assert videos and videos[0].read_bytes()[4:8] == b"ftyp"

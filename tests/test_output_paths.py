"""Output paths that cannot be written get one line and exit status 2, before any env or file is made."""

import pytest

import main
import main_atari
from ppo import evaluate, plot


@pytest.mark.parametrize("entry, prog", [(main.main, "main.py"), (main_atari.main, "main_atari.py")])
def test_a_log_dir_that_is_a_file(entry, prog, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file")
    for log_dir in ("taken", "taken/runs"):  # the file itself, or a directory that would have to be under it
        with pytest.raises(SystemExit) as exit_info:
            entry(["--total-timesteps", "256", "--log-dir", log_dir, "--no-progress"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"{prog}: error: argument --log-dir") and "'taken" in err and "file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing else written


def test_a_videos_path_that_is_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "videos").write_text("a file where the videos would go")
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--total-timesteps", "256", "--capture-video", "--no-progress", "--log-dir", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --capture-video" in err and "'videos'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_evaluate_video_dir_and_plot_output_that_cannot_be(tmp_path, capsys, monkeypatch):
    assert main.main(["--num-envs", "2", "--num-steps-collected", "64", "--total-timesteps", "128", "--no-progress",
                      "--log-dir", str(tmp_path / "runs"), "--exp-name", "ppo"]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    (tmp_path / "file").write_text("x")
    cases = [
        (evaluate.main, [str(run_dir), "--capture-video", "--video-dir", str(tmp_path / "file")], "--video-dir"),
        (plot.main, [str(run_dir), "-o", str(tmp_path / "file" / "curves.png")], "-o/--output"),
        (plot.main, [str(run_dir), "-o", str(tmp_path)], "-o/--output"),
    ]
    for entry, argv, flag in cases:
        before = sorted(tmp_path.rglob("*"))
        with pytest.raises(SystemExit) as exit_info:
            entry([*argv, "--no-progress"] if entry is evaluate.main else argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"error: argument {flag}" in err, err
        assert sorted(tmp_path.rglob("*")) == before


def test_a_log_dir_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    """The tests run as root, who may write anywhere, so the permission check is told that ``locked`` is not
    writable (os.access is what it asks)."""
    import ppo.cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = ppo.cli.os.access
    monkeypatch.setattr(ppo.cli.os, "access", lambda path, mode: str(path) != str(locked) and real_access(path, mode))
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--total-timesteps", "256", "--log-dir", str(locked / "runs"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "argument --log-dir" in err and "not writable" in err, err
    assert list(locked.iterdir()) == []

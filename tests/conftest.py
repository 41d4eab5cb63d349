import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Tolerance for a float32 result against an expectation computed in float64 (Python floats, NumPy float64):
# each float32 op rounds to 24 bits (6e-8 relative), and torch's vectorized exp/log/sum kernels differ in their
# last bits between CPUs (AVX2, AVX-512: ATEN_CPU_CAPABILITY picks them), so a handful of ops on numbers of order
# 1 lands within a few 1e-7. rel 1e-5 (about 80 float32 ulps) covers a chain of them; abs 1e-6 covers results
# near 0 that come out of a cancellation, such as (r - 1) - log r. Use as pytest.approx(expected, **F32).
F32 = {"rel": 1e-5, "abs": 1e-6}

# What every training run must log to TensorBoard.
TAGS = {
    "charts/episodic_return", "charts/episodic_length", "charts/learning_rate", "charts/SPS",
    "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/old_approx_kl",
    "losses/clipfrac", "losses/explained_variance",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end training runs (still run in CI)")


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of a TensorBoard run directory, tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def assert_usage_error(entry, prog: str, flags: list[str], mentions: str, tmp_path: Path, capsys,
                       monkeypatch) -> None:
    """Bad input: exit status 2, one line on stderr naming the flag, its value and the problem; nothing written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        entry([*flags, "--log-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: argument {flags[0]}") and mentions in err and flags[1] in err, err
    assert list(tmp_path.iterdir()) == []


def only_run_dir(log_dir: Path) -> Path:
    runs = [p for p in log_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]

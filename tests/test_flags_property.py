"""Property: whatever value a numeric flag gets, main.py trains a short run, or exits 2 with one line on stderr
naming the flag, or (for a value that makes the arithmetic overflow, such as --ent-loss-coeff 1e22) stops at the
first non-finite loss or gradient with one line and exit 1; never a traceback."""

import contextlib
import io
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import main

# Small valid values for everything else, so that a valid draw is a run of a few updates.
BASE = {"--num-envs": "2", "--num-steps-collected": "8", "--num-mini-batches": "2", "--num-epochs": "1",
        "--total-timesteps": "32"}
# Flags whose value sets how much work a run is: drawn from small numbers (and junk), not from any integer.
SIZES = {"--num-envs", "--num-steps-collected", "--num-mini-batches", "--num-epochs", "--total-timesteps",
         "--save-every", "--keep-checkpoints", "--cpu-threads"}
OTHERS = ["--learning-rate", "--gae-gamma", "--gae-lambda", "--clip-coeff", "--ent-loss-coeff", "--value-loss-coeff",
          "--max-gradient", "--seed"]

junk = st.sampled_from(["", "-", "abc", "1e", "0x10", "1_", "nan", "inf", "-inf", "1e400", "--", "½", "1,5"])
numbers = st.one_of(st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.floats(-1e6, 1e6).map(lambda x: f"{x:e}"))
small = st.one_of(st.integers(-3, 40).map(str), st.floats(-2, 40).map(repr), st.sampled_from(["1e1", "2.0", "1_0"]))


@st.composite
def flag_and_value(draw):
    flag = draw(st.sampled_from(sorted(SIZES) + OTHERS))
    return flag, draw(st.one_of(junk, small if flag in SIZES else numbers))


@example(("--seed", str(2**32)))  # NumPy's global generator takes seeds below 2**32 only
@example(("--seed", "1e30"))
@example(("--learning-rate", "1e400"))
@example(("--gae-gamma", "nan"))
@example(("--num-mini-batches", "3"))  # does not divide the batch of 16
@example(("--num-envs", "0"))
@example(("--clip-coeff", "3.4e38"))  # overflowed float32 in the clamp before it was refused
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flag_and_value())
def test_a_numeric_flag_trains_or_exits_2_with_one_line(drawn):
    flag, value = drawn
    flags = {**BASE, flag: value}
    err = io.StringIO()
    with tempfile.TemporaryDirectory() as log_dir, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        argv = [item for pair in flags.items() for item in pair] + ["--log-dir", log_dir, "--no-progress"]
        try:
            code = main.main(argv)
        except SystemExit as exit_info:
            code = exit_info.code
    lines = err.getvalue().strip().splitlines()
    assert "Traceback" not in err.getvalue(), (flag, value, err.getvalue())
    if code == 0:
        assert lines == [], lines
    elif code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: non-finite "), (flag, value, lines)
    else:
        assert code == 2, (flag, value, code, err.getvalue())
        assert len(lines) == 1 and lines[0].startswith(f"main.py: error: argument {flag}"), (flag, value, lines)

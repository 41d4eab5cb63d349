"""Command-line plumbing with no torch and no trainer: the one-line error, the parser that prints it, and the value
types of the flags. Every layer may import it (the wrappers' checks, ``python -m ppo.plot``), so it imports
nothing of this project.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line on stderr (no usage dump), exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Let "-1e-3" be read as a (bad) value, not as an unknown option, so the error names the real problem.
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---- value types: each names the problem; argparse prefixes "argument --flag:" ----------------------------------


def count(text: str) -> int:
    """A positive whole number, also written the way people type it: 1e6, 1_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if not math.isfinite(value) or value != int(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(value)


def whole_number(text: str) -> int:
    """Any whole number ≥ 0 (seeds), accepting 1e3 notation."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}") from None
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}")
    return int(value)


def seed_number(text: str) -> int:
    """A whole number in [0, 2**32 − 1], the range NumPy's global generator can be seeded with."""
    value = whole_number(text)
    if value > 2**32 - 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**32 - 1 (4294967295), got {text!r}")
    return value


PLAIN = (bool, int, float, str, type(None))


def is_plain(value: Any) -> bool:
    """Numbers, strings, booleans, None, and lists, tuples and string-keyed dicts of them: what a checkpoint holds
    and loads without running pickled code."""
    if isinstance(value, list | tuple):
        return all(is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_plain(item) for key, item in value.items())
    return isinstance(value, PLAIN)


def keyword_argument(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, the value read as a Python literal (``length=8``, ``scale=0.5``, ``mode='hard'``, ``sizes=[1,
    2]``); a value that is no literal is taken as a string (``mode=hard``)."""
    key, equals, value_text = text.partition("=")
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a Python name, got {text!r}")
    try:
        value = ast.literal_eval(value_text)
    except (ValueError, SyntaxError):
        value = value_text
    if not is_plain(value):
        raise argparse.ArgumentTypeError(f"{key}: expected a number, string, boolean, None, or a list, tuple or "
                                         f"dict of them, got {value_text!r}")
    return key, value


LARGEST = 1e30  # float32's range ends near 3.4e38: larger coefficients overflow in the loss's arithmetic


def _float_in(name: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
        if not math.isfinite(value) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}")
        if abs(value) > LARGEST:
            raise argparse.ArgumentTypeError(f"expected {name} of at most {LARGEST:g}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


positive_float = _float_in("a number > 0", lambda v: v > 0)
non_negative_float = _float_in("a number ≥ 0", lambda v: v >= 0)
unit_interval = _float_in("a number in [0, 1]", lambda v: 0 <= v <= 1)
log_std = _float_in("a log standard deviation in [-20, 2]", lambda v: -20 <= v <= 2)


def checked(parser: argparse.ArgumentParser, check: Callable[[], T]) -> T:
    """Runs every input check; a UsageError becomes one line on stderr and exit status 2."""
    try:
        return check()
    except UsageError as error:
        parser.error(str(error))


def check_directory(path: str, flag: str) -> None:
    """A UsageError unless ``path`` is, or can be made as, a directory this process may write into. Makes
    nothing."""
    target = Path(path)
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == target else f"is under {str(existing)!r}, which is a file"
        raise UsageError(f"argument {flag}: {path!r} {where}: a directory is needed")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"argument {flag}: {path!r} cannot be written: {str(existing)!r} is not writable")


def check_output_file(path: str, flag: str) -> None:
    """A UsageError unless ``path`` names a file this process may write (its directory may be made). Makes
    nothing."""
    if Path(path).is_dir():
        raise UsageError(f"argument {flag}: {path!r} is a directory: a file name is needed")
    check_directory(str(Path(path).parent), flag)

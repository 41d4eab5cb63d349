"""Learning curves from runs' TensorBoard events, as one PNG.

    python -m ppo.plot RUN_DIR [RUN_DIR ...] -o curves.png

Runs of the same env and experiment name with different seeds are drawn as their mean with a band (the spread
across seeds, min to max); any other run as a line of its own. A directory that holds run directories (such as
``runs``) stands for all of them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppo.cli import OneLineParser, UsageError, check_output_file, checked, count, unit_interval

RUN_NAME = re.compile(r"^(?P<env>.+?)__(?P<exp>.+)__(?P<seed>\d+)__(?P<time>\d+)$")
TAG = "charts/episodic_return"


@dataclass
class Curve:
    run_dir: Path
    env: str
    group: str  # "<env> (<exp name>)": runs of one group differ only in seed
    steps: np.ndarray
    values: np.ndarray


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m ppo.plot", description="Plot episodic return against steps of runs")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories, or directories holding them (such as runs)")
    parser.add_argument("-o", "--output", default="curves.png", help="PNG file to write (default: curves.png)")
    parser.add_argument("--smoothing", type=unit_interval, default=0.9,
                        help="weight of TensorBoard's exponential moving average over episodes, 0 for raw "
                             "(default: 0.9)")
    parser.add_argument("--title", default=None, help="title (default: the env ids)")
    parser.add_argument("--width", type=count, default=1000, help="image width in pixels (default: 1000)")
    parser.add_argument("--height", type=count, default=600, help="image height in pixels (default: 600)")
    return parser


def has_events(path: Path) -> bool:
    return any(path.glob("events.out.tfevents.*"))


def find_runs(paths: list[str]) -> list[Path]:
    runs: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            raise UsageError(f"argument RUN_DIR: {text!r} is not a directory")
        found = [path] if has_events(path) else sorted(p for p in path.iterdir() if p.is_dir() and has_events(p))
        if not found:
            raise UsageError(f"argument RUN_DIR: {text!r} holds no TensorBoard events (not a run directory)")
        runs += found
    return list(dict.fromkeys(runs))


def env_and_group(run_dir: Path) -> tuple[str, str]:
    match = RUN_NAME.match(run_dir.name)
    return (match["env"], f"{match['env']} ({match['exp']})") if match else (run_dir.name, run_dir.name)


def read_curve(run_dir: Path) -> Curve | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A resumed run's events purge what its interrupted rollout logged; TensorBoard warns about that, rightly.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    if TAG not in events.Tags()["scalars"]:
        return None
    scalars = events.Scalars(TAG)
    return Curve(run_dir, *env_and_group(run_dir), np.array([e.step for e in scalars], np.float64),
                 np.array([e.value for e in scalars], np.float64))


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average."""
    out = np.empty_like(values)
    last, debias = 0.0, 0.0
    for i, value in enumerate(values):
        last = weight * last + (1 - weight) * value
        debias = weight * debias + (1 - weight)
        out[i] = last / debias
    return out


def mean_and_band(curves: list[Curve], weight: float, points: int = 200
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeds interpolated onto the steps all of them cover: (steps, mean, low, high)."""
    start = max(c.steps[0] for c in curves)
    end = min(c.steps[-1] for c in curves)
    grid = np.linspace(start, end, points) if end > start else np.array([start])
    ys = np.stack([np.interp(grid, c.steps, smooth(c.values, weight)) for c in curves])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def plot(curves: list[Curve], output: Path, weight: float, title: str | None, width: int, height: int
         ) -> list[str]:
    """Writes the PNG; returns the legend's labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(width / dpi, height / dpi), dpi=dpi)
    groups: dict[str, list[Curve]] = defaultdict(list)
    for curve in curves:
        groups[curve.group].append(curve)
    for group, members in groups.items():
        if len(members) > 1:
            steps, mean, low, high = mean_and_band(members, weight)
            (line,) = ax.plot(steps, mean, label=f"{group}, mean of {len(members)} seeds (band: min to max)")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        else:
            curve = members[0]
            match = RUN_NAME.match(curve.run_dir.name)
            ax.plot(curve.steps, smooth(curve.values, weight), label=f"{group}, seed {match['seed']}" if match
                    else group)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return")
    ax.set_title(title or ", ".join(dict.fromkeys(curve.env for curve in curves)))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=dpi)
    plt.close(fig)
    return [text.get_text() for text in ax.get_legend().get_texts()]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def check() -> list[Curve]:
        check_output_file(args.output, "-o/--output")
        runs = find_runs(args.run_dirs)
        curves = [curve for curve in map(read_curve, runs) if curve is not None]
        if not curves:
            raise UsageError(f"argument RUN_DIR: no episode has finished in {', '.join(map(str, runs))}: "
                             "nothing to plot")
        return curves

    curves = checked(parser, check)
    plot(curves, Path(args.output), args.smoothing, args.title, args.width, args.height)
    seeds = len(curves)
    print(f"{args.output}: episodic return of {seeds} run{'s' * (seeds != 1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

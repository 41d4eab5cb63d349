"""Scaling benchmark: steps per second of one policy trained by 1 and by N processes under torchrun.

    python bench/ranks.py                                  # CartPole-v1, 1 and 2 ranks of 4 envs, 3 rounds
    python bench/ranks.py --script main_atari.py --env-id ALE/Breakout-v5 --steps 8192
    python bench/ranks.py -- --num-steps-collected 2048       # flags after -- go to the script

Each rank runs --num-envs envs with one CPU thread (OMP_NUM_THREADS=1); the rank counts are run alternating
(1 2 1 2 ...) and each one's median of the SPS its summary line prints (training loop, all ranks' steps) is
reported with its ratio to 1 rank. Run it alone: it measures a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPS_LINE = re.compile(r"steps in ([\d.]+) s \(([\d,]+) SPS\)")


def run(ranks: int, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as log_dir:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
                   args.script, "--environment-id", args.env_id, "--num-envs", str(args.num_envs),
                   "--total-timesteps", str(args.steps), "--log-dir", log_dir, "--no-progress", *args.extra]
        out = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                             text=True, check=True).stdout
    return float(SPS_LINE.search(out).group(2).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--script", default="main.py")
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=204_800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="flags for the script, after --")
    args = parser.parse_args()
    sps: dict[int, list[float]] = {ranks: [] for ranks in args.ranks}
    for round_ in range(args.repeats):
        for ranks in args.ranks:
            sps[ranks].append(run(ranks, args))
            print(f"round {round_ + 1}: {ranks} rank(s) {sps[ranks][-1]:,.0f} SPS", flush=True)
    base = statistics.median(sps[args.ranks[0]])
    print(f"\n{args.env_id}, {args.num_envs} envs per rank, {args.steps:,} steps, OMP_NUM_THREADS=1 "
          f"{' '.join(args.extra)}")
    for ranks, values in sps.items():
        median = statistics.median(values)
        print(f"{ranks} rank(s): {median:,.0f} SPS (median of {len(values)}: "
              f"{', '.join(f'{v:,.0f}' for v in values)}), {median / base:.2f}x")


if __name__ == "__main__":
    main()

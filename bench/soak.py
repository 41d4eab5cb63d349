"""Soak test: a long CartPole-v1 run's resident memory, sampled as it trains.

    python bench/soak.py                      # 2,000,000 steps, main.py's defaults otherwise
    python bench/soak.py --steps 5e6 --interval 5

Runs `main.py` in a child process and reads its resident set size (VmRSS in /proc/<pid>/status, Linux) every
--interval seconds. Warm-up is the first --warm-up fraction of the samples (imports, first allocations, the
allocator settling); the growth reported is the largest sample after warm-up against the last warm-up sample.
The run passes under 5 %. Run it alone: other work changes the timing, not the memory, but takes long.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resident_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return int(line.split()[1]) / 1024 if line else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=float, default=2e6, help="env steps of the run (default: 2e6)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples (default: 2)")
    parser.add_argument("--warm-up", type=float, default=0.1, help="fraction of samples that are warm-up (0.1)")
    parser.add_argument("extra", nargs="*", help="extra flags for main.py, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as log_dir:
        process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--total-timesteps", str(int(args.steps)),
                                    "--no-progress", "--log-dir", log_dir, *args.extra], cwd=ROOT,
                                   stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        while process.poll() is None:
            time.sleep(args.interval)
            if (rss := resident_mb(process.pid)) is not None:
                samples.append((time.monotonic() - start, rss))
        summary = process.stdout.read().strip().splitlines()[-1]
    if process.returncode != 0 or len(samples) < 10:
        print(f"the run failed or was too short to judge (exit {process.returncode}, {len(samples)} samples)")
        return 1
    warm = max(1, int(len(samples) * args.warm_up))
    baseline, peak = samples[warm - 1][1], max(rss for _, rss in samples[warm:])
    growth = (peak - baseline) / baseline
    print(summary)
    print("resident MB over time: " + ", ".join(f"{t:.0f}s {rss:.0f}" for t, rss in samples[:: max(1, len(samples)
                                                                                                 // 12)]))
    print(f"soak: {int(args.steps):,} steps; resident {baseline:.1f} MB after warm-up ({samples[warm - 1][0]:.0f} s),"
          f" at most {peak:.1f} MB after it: growth {growth:+.1%} ({'under' if growth < 0.05 else 'over'} 5 %)")
    return 0 if growth < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())

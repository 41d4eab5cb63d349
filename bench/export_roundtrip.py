"""Export round trip: a run's ONNX policy (python -m ppo.export) played for N episodes with onnxruntime, beside
ppo.evaluate's deterministic policy on the same episodes (the same env, the same seeds), and the milliseconds
per action of each as the export measured them.

    python bench/export_roundtrip.py RUN [--episodes 20]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def play_onnx(run_dir: Path, model: Path, episodes: int) -> np.ndarray:
    """Returns of ``episodes`` episodes of the run's env (seeds 0, 1, ...), actions from onnxruntime alone."""
    import onnxruntime

    from ppo import checkpoint
    from ppo.evaluate import make_env

    payload = checkpoint.load(str(run_dir), "RUN", prefer_model=True).payload
    env, _ = make_env(payload["script"], payload["env_id"], payload["args"])
    session = onnxruntime.InferenceSession(str(model))
    given = {given.name: given for given in session.get_inputs()}
    # a recurrent policy's state [k, batch, size], carried from step to step, zeroed where an episode (or an
    # Atari life) starts, as ppo.evaluate does
    zero = np.zeros((given["state"].shape[0], 1, given["state"].shape[2]), np.float32) if "state" in given else None
    returns = []
    for episode in range(episodes):
        obs, info = env.reset(seed=episode)
        state = zero
        while True:
            feeds = {"obs": np.asarray(obs)[None]}
            if "action_mask" in given:
                feeds["action_mask"] = np.asarray(info["action_mask"], bool)[None]
            if state is not None:
                feeds["state"] = state
                action, state = session.run(["action", "state_out"], feeds)
            else:
                (action,) = session.run(["action"], feeds)
            obs, _, terminated, truncated, info = env.step(action[0])
            if (terminated or truncated) and "episode" in info:  # Atari: a whole game, not a life
                returns.append(float(info["episode"]["r"]))
                break
            if terminated or truncated:
                obs, info = env.reset()
                state = zero
    env.close()
    return np.array(returns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    model = args.run / "policy.onnx"
    exported = subprocess.run([sys.executable, "-m", "ppo.export", str(args.run), "-o", str(model)], check=True,
                              capture_output=True, text=True, cwd=ROOT).stdout
    timing = re.search(r"one action: (.+)$", exported.strip()).group(1)
    onnx_returns = play_onnx(args.run, model, args.episodes)
    returns = []
    for episode in range(args.episodes):  # ppo.evaluate, one episode a seed, as play_onnx seeds them
        out = subprocess.run([sys.executable, "-m", "ppo.evaluate", str(args.run), "--episodes", "1",
                              "--deterministic", "--seed", str(episode), "--no-progress"], check=True,
                             capture_output=True, text=True, cwd=ROOT).stdout
        returns.append(float(re.search(r"return (\S+) ±", out).group(1)))
    print(f"{args.run.name}: ONNX policy {onnx_returns.mean():.2f} ± {onnx_returns.std():.2f} | ppo.evaluate "
          f"deterministic {np.mean(returns):.2f} ± {np.std(returns):.2f} ({args.episodes} episodes, seeds 0-"
          f"{args.episodes - 1}); one action: {timing}")


if __name__ == "__main__":
    main()

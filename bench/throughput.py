"""Throughput benchmark: this project against Stable-Baselines3, same hyperparameters, same run.

    pip install -r requirements-bench.txt
    python bench/throughput.py --preset cartpole            # CartPole-v1, main.py defaults
    python bench/throughput.py --preset atari               # Breakout, main_atari.py defaults
    python bench/throughput.py --preset atari --use-gpu --steps 32768   # both sides on CUDA
    python bench/throughput.py --preset image               # a 64x64 RGB image env of the tests, main.py defaults
    python bench/throughput.py --preset memory              # CartPoleNoVel-v1's --tuned row (its GRU),
                                                            # beside sb3-contrib's RecurrentPPO
    python bench/throughput.py --whole-process --repeats 5  # `python main.py` as a user times it, start-up included

Both sides train the same env with the same env count, rollout length, minibatches, epochs and network, in
separate processes, alternating A B A B; each side's median steps per second (training loop only, set-up
excluded) and the ratio are printed, then where this project's time went (env stepping, rollout inference, GAE,
update). With --whole-process, a default `python main.py` (CartPole-v1, 25,000 steps) and the same run of
Stable-Baselines3 are each timed as a whole process by /usr/bin/time, start-up included, the way a user times
them. Run it alone: it measures a shared machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRESETS = {
    "cartpole": dict(script="main.py", env_id="CartPole-v1", num_envs=4, steps=40_960),
    "atari": dict(script="main_atari.py", env_id="ALE/Breakout-v5", num_envs=8, steps=8_192),
    # tests/image_envs.py's cue, 64x64 RGB: the Nature CNN on both sides (SB3's CnnPolicy), a fast env, so that
    # the figure measures the trainers rather than the env (CarRacing-v3 steps about 180 times a second a core).
    "image": dict(script="main.py", env_id="tests.image_envs:PixelCue-v0", env_kwargs={"size": 64}, num_envs=4,
                  steps=16_384),
    # memory: CartPoleNoVel-v1's --tuned row (8 envs x 32 steps, 10 epochs of one minibatch, a GRU), beside
    # sb3-contrib's RecurrentPPO with the same row (bench/learning.py sb3_like_model).
    "memory": dict(script="main.py", env_id="CartPoleNoVel-v1", num_envs=8, steps=40_960, extra=["--tuned"]),
}
SPS_LINE = re.compile(r"steps in ([\d.]+) s \(([\d,]+) SPS\)")
PHASES = re.compile(r"(\w+) ([\d.]+) s \((\d+)%\)")


def run_ours(preset: dict, extra: list[str]) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as log_dir:
        out = subprocess.run(
            [sys.executable, str(ROOT / preset["script"]), "--environment-id", preset["env_id"],
             "--num-envs", str(preset["num_envs"]), "--total-timesteps", str(preset["steps"]),
             *[f"--env-kwargs={key}={value}" for key, value in preset.get("env_kwargs", {}).items()],
             "--log-dir", log_dir, "--no-progress", "--timings", *preset.get("extra", []), *extra],
            check=True, capture_output=True, text=True, cwd=ROOT).stdout
    sps = float(SPS_LINE.search(out).group(2).replace(",", ""))
    phases_line = next(line for line in out.splitlines() if line.startswith("time per phase"))
    return sps, {name: float(seconds) for name, seconds, _ in PHASES.findall(phases_line)}


def sb3_worker(preset_name: str, device: str, subproc: bool) -> None:
    """Runs in its own process: SB3's PPO with this project's defaults for the preset; prints its SPS."""
    import torch
    from stable_baselines3 import PPO

    sys.path.insert(0, str(ROOT))  # tests.image_envs, for the image preset
    preset = PRESETS[preset_name]
    lr0 = 2.5e-4
    common = dict(learning_rate=lambda remaining: lr0 * remaining, n_steps=128, n_epochs=4, gamma=0.99,
                  gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, seed=1, device=device)
    if preset_name == "memory":
        sys.path.insert(0, str(ROOT / "bench"))
        from learning import sb3_like_model

        model = sb3_like_model(preset["env_id"], preset["steps"], 1, ["--num-envs", str(preset["num_envs"]),
                                                                      *preset["extra"]])
    elif preset_name in ("cartpole", "image"):
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize

        # main.py's defaults: rewards scaled, observations not normalized (Discrete actions; images never).
        envs = VecNormalize(make_vec_env(preset["env_id"], n_envs=preset["num_envs"], seed=1,
                                         env_kwargs=preset.get("env_kwargs")), norm_obs=False)
        # The image preset: SB3's CnnPolicy is the Nature CNN (512 features) with linear heads, as main.py's.
        policy, policy_kwargs = ("CnnPolicy", {}) if preset_name == "image" else \
            ("MlpPolicy", dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh))
        model = PPO(policy, envs, batch_size=128, clip_range=0.2, clip_range_vf=0.2, policy_kwargs=policy_kwargs,
                    **common)
    else:
        import ale_py
        import gymnasium as gym
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

        gym.register_envs(ale_py)
        # frameskip=1: SB3's AtariWrapper skips 4 frames itself, as this project's preprocessing does.
        envs = VecFrameStack(make_atari_env(preset["env_id"], n_envs=preset["num_envs"], seed=1,
                                            env_kwargs=dict(frameskip=1),
                                            vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
                                            # fork: the workers inherit the ALE registration made above
                                            vec_env_kwargs=dict(start_method="fork") if subproc else None),
                             n_stack=4)
        model = PPO("CnnPolicy", envs, batch_size=256, clip_range=0.1, clip_range_vf=0.1, **common)
    start = time.perf_counter()
    model.learn(total_timesteps=preset["steps"])
    print(json.dumps({"sps": model.num_timesteps / (time.perf_counter() - start)}))


def run_sb3(preset_name: str, use_gpu: bool, subproc: bool) -> float:
    out = subprocess.run([sys.executable, __file__, "--sb3-worker", preset_name, "--env-id",
                          PRESETS[preset_name]["env_id"], "--steps", str(PRESETS[preset_name]["steps"]),
                          *(["--use-gpu"] if use_gpu else []), *(["--sb3-subproc"] if subproc else [])], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])["sps"]


def whole_process_seconds(command: list[str]) -> float:
    """Wall-clock seconds of ``command`` as /usr/bin/time measures it: interpreter start, imports, training, exit."""
    with tempfile.TemporaryDirectory() as log_dir:
        out = subprocess.run(["/usr/bin/time", "-f", "%e", *command, *(["--log-dir", log_dir, "--no-progress"]
                                                                       if "main.py" in command[1] else [])],
                             check=True, capture_output=True, text=True, cwd=ROOT)
    return float(out.stderr.strip().splitlines()[-1])


def compare_whole_processes(repeats: int) -> None:
    ours_command = [sys.executable, "main.py"]
    theirs_command = [sys.executable, __file__, "--sb3-worker", "cartpole", "--steps", "25000"]
    ours, theirs = [], []
    for repeat in range(repeats):
        ours.append(whole_process_seconds(ours_command))
        theirs.append(whole_process_seconds(theirs_command))
        print(f"pair {repeat + 1}: python main.py {ours[-1]:.2f} s, Stable-Baselines3 {theirs[-1]:.2f} s "
              f"({theirs[-1] / ours[-1]:.2f}x)", flush=True)
    pair_ratios = sorted(b / a for a, b in zip(ours, theirs, strict=True))
    print(f"whole process: python main.py {statistics.median(ours):.2f} s | Stable-Baselines3 "
          f"{statistics.median(theirs):.2f} s | ratio {statistics.median(theirs) / statistics.median(ours):.2f}x "
          f"(median of {repeats}; the pairs' own ratios {pair_ratios[0]:.2f}-{pair_ratios[-1]:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cartpole")
    parser.add_argument("--repeats", type=int, default=3, help="A B pairs (default: 3)")
    parser.add_argument("--env-id", help="another env id for the preset (e.g. ALE/Assault-v5, main_atari's default)")
    parser.add_argument("--steps", type=int, help="steps per run (default: 40,960 for cartpole, 8,192 for atari)")
    parser.add_argument("--use-gpu", action="store_true",
                        help="both sides on CUDA: --use-gpu for this project, device='cuda' for Stable-Baselines3")
    parser.add_argument("--sb3-subproc", action="store_true",
                        help="atari: Stable-Baselines3 steps its envs in subprocesses (SubprocVecEnv) instead of its "
                             "default DummyVecEnv; pair it with '-- --vec-backend async' for this project")
    parser.add_argument("--whole-process", action="store_true",
                        help="time a default `python main.py` and the same Stable-Baselines3 run as whole processes")
    parser.add_argument("--sb3-worker", help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help="extra flags for this project's script, after --")
    args = parser.parse_args()
    if args.env_id:
        PRESETS[args.preset]["env_id"] = args.env_id
    if args.steps:
        PRESETS[args.preset]["steps"] = args.steps
    if args.sb3_worker:
        sb3_worker(args.sb3_worker, "cuda" if args.use_gpu else "cpu", args.sb3_subproc)
        return
    if args.whole_process:
        compare_whole_processes(args.repeats)
        return

    preset = PRESETS[args.preset]
    ours, theirs, phases = [], [], []
    for repeat in range(args.repeats):
        sps, phase_seconds = run_ours(preset, [*args.extra, *(["--use-gpu"] if args.use_gpu else [])])
        ours.append(sps)
        phases.append(phase_seconds)
        theirs.append(run_sb3(args.preset, args.use_gpu, args.sb3_subproc))
        print(f"pair {repeat + 1}: this project {ours[-1]:,.0f} SPS, Stable-Baselines3 {theirs[-1]:,.0f} SPS "
              f"({ours[-1] / theirs[-1]:.2f}x)", flush=True)
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    pair_ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    print(f"{args.preset}: this project {ours_median:,.0f} SPS | Stable-Baselines3 {theirs_median:,.0f} SPS | "
          f"ratio {ours_median / theirs_median:.2f}x  ({preset['steps']:,} steps each, median of {args.repeats}; "
          f"the pairs' own ratios {pair_ratios[0]:.2f}-{pair_ratios[-1]:.2f}x, median "
          f"{statistics.median(pair_ratios):.2f}x)")
    total = {name: statistics.median(p[name] for p in phases) for name in phases[0]}
    whole = sum(total.values())
    print("this project's time: " + ", ".join(f"{name} {seconds / whole:.0%}" for name, seconds in total.items()))


if __name__ == "__main__":
    main()

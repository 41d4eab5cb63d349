"""Learning benchmark: train envs for a number of steps over several seeds; mean ± std of the final return.

    python bench/learning.py --envs CartPole-v1 Acrobot-v1 Pendulum-v1 --total-timesteps 100000 --seeds 1 2 3 4 5
    python bench/learning.py --script main_atari.py --envs ALE/Breakout-v5 --total-timesteps 150000 --seeds 1 2 3 \
        -- --env-backend envpool --bf16

Each run is `main.py` (or --script main_atari.py) with its defaults (the original hyperparameters) except the
env, the step count and the seed; the score of a run is the mean return of its last 20 episodes, as printed in
the script's summary line (for Atari: whole games, unclipped). --evaluate N adds each final model's mean return
over N episodes with the deterministic policy (how rl-baselines3-zoo's published scores are measured).
With --sb3, Stable-Baselines3's PPO is trained in the same invocation with the same hyperparameters
(requirements-bench.txt; for main_atari.py on SB3's own Atari wrappers; with flags after -- for main.py, such as
--tuned, the ones main.py runs with, translated for SB3) and the ratio of the two means is printed:

    python bench/learning.py --envs Hopper-v5 --total-timesteps 1000000 --seeds 1 2 3 --sb3 -- --tuned

    python bench/learning.py --script main_atari.py --envs BreakoutNoFrameskip-v4 --total-timesteps 500000 \
        --seeds 1 2 3 --sb3

    python bench/learning.py --envs CarRacing-v3 --total-timesteps 500000 --seeds 1 --sb3-only \
        --sb3-monitor-dir runs/sb3 -- --tuned

--sb3-only trains Stable-Baselines3's side alone (to add its seeds to a table, or to run them beside this
project's runs: with OMP_NUM_THREADS=1 each takes one core).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SUMMARY = re.compile(r"mean return of the last \d+ episodes: (\S+); run directory: (.+)$", re.MULTILINE)
EVALUATED = re.compile(r"\): return (\S+) ±")


def run_ours(script: str, env_id: str, steps: int, seed: int, extra: list[str], evaluate: int = 0
             ) -> tuple[float, float | None]:
    """The run's score (its last 20 episodes' mean return) and, with ``evaluate`` episodes, its final model's
    mean return in that many episodes with the deterministic policy (``python -m ppo.evaluate --deterministic``:
    how rl-baselines3-zoo scores its published figures)."""
    with tempfile.TemporaryDirectory() as log_dir:
        out = subprocess.run(
            [sys.executable, str(ROOT / script), "--environment-id", env_id, "--total-timesteps", str(steps),
             "--seed", str(seed), "--log-dir", log_dir, "--no-progress", *extra],
            check=True, capture_output=True, text=True, cwd=ROOT,
        ).stdout
        score, run_dir = SUMMARY.search(out).groups()
        if not evaluate:
            return float(score), None
        played = subprocess.run(
            [sys.executable, "-m", "ppo.evaluate", run_dir, "--episodes", str(evaluate), "--deterministic",
             "--no-progress"], check=True, capture_output=True, text=True, cwd=ROOT,
        ).stdout
    return float(score), float(EVALUATED.search(played).group(1))


def run_sb3(env_id: str, steps: int, seed: int) -> float:
    """SB3 PPO with main.py's default hyperparameters (its own defaults differ)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    envs = make_vec_env(env_id, n_envs=4, seed=seed)
    if isinstance(envs.action_space, gym.spaces.Box):
        envs = VecNormalize(envs, gamma=0.99)
    lr0 = 2.5e-4
    model = PPO("MlpPolicy", envs, learning_rate=lambda remaining: lr0 * remaining, n_steps=128, batch_size=128,
                n_epochs=4, gamma=0.99, gae_lambda=0.95, clip_range=0.2, clip_range_vf=0.2, ent_coef=0.01,
                vf_coef=0.5, max_grad_norm=0.5, seed=seed, device="cpu",
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh))
    model.learn(total_timesteps=steps)
    returns = [info["r"] for info in model.ep_info_buffer][-20:]
    return float(np.mean(returns))


def main_py_flags(env_id: str, steps: int, seed: int, extra: list[str]) -> argparse.Namespace:
    """main.py's flags for this run, --tuned's row included, as main.py parses them."""
    from main import build_main_parser
    from ppo.runner import parse_arguments

    argv = ["--environment-id", env_id, "--total-timesteps", str(steps), "--seed", str(seed), *extra]
    return parse_arguments(build_main_parser(), argv, "main")[0]


def image_wrappers(a: argparse.Namespace):
    """--resize and --grayscale as ours apply them (wrappers/images.py preprocess_image; the frames are stacked by
    SB3's VecFrameStack, channels last, which its CnnPolicy transposes)."""
    import gymnasium as gym

    def wrap(env):
        if a.resize:
            env = gym.wrappers.ResizeObservation(env, tuple(a.resize))
        return gym.wrappers.GrayscaleObservation(env, keep_dim=True) if a.grayscale else env
    return wrap


def run_sb3_like(env_id: str, steps: int, seed: int, extra: list[str], monitor_dir: str | None = None) -> float:
    """SB3 PPO with the hyperparameters main.py runs with under ``extra``; the mean of its last 20 episodes."""
    model = sb3_like_model(env_id, steps, seed, extra, monitor_dir)
    model.learn(total_timesteps=steps)
    returns = [info["r"] for info in model.ep_info_buffer][-20:]
    return float(np.mean(returns))


def sb3_like_model(env_id: str, steps: int, seed: int, extra: list[str], monitor_dir: str | None = None):
    """SB3 PPO with the hyperparameters main.py runs with under ``extra`` (``--tuned``: the row's, which are the
    zoo's SB3 settings translated, translated back; an image row's preprocessing as SB3 wrappers, and its
    CnnPolicy; with --recurrent lstm, sb3-contrib's RecurrentPPO with one LSTM of the same size shared by actor
    and critic, as ours). ``monitor_dir``: where SB3's Monitor writes every episode (for a curve). Not
    translated: main.py's value loss is ½·MSE, SB3's MSE, so SB3's value term weighs twice ours at the same
    --value-loss-coeff (the zoo's rows are SB3's weights); sb3-contrib's LSTM reads the observation and the
    --hidden-sizes layers come after it, ours come before it; sb3-contrib has no GRU: its LSTM stands in for ours."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.preprocessing import is_image_space
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

    from main import normalizes_observations
    from wrappers.novel import register_no_velocity

    register_no_velocity()
    a = main_py_flags(env_id, steps, seed, extra)
    images = bool(a.resize or a.grayscale or a.frame_stack > 1)
    envs = make_vec_env(env_id, n_envs=a.num_envs, seed=seed, env_kwargs=dict(a.env_kwargs),
                        wrapper_class=image_wrappers(a) if images else None, monitor_dir=monitor_dir)
    if a.frame_stack > 1:
        envs = VecFrameStack(envs, n_stack=a.frame_stack)
    norm_obs = normalizes_observations(a, envs.action_space) and not is_image_space(envs.observation_space)
    if norm_obs or a.normalize_reward:
        envs = VecNormalize(envs, norm_obs=norm_obs, norm_reward=a.normalize_reward, gamma=a.gae_gamma)

    def linear(start: float, annealed: bool):
        return (lambda remaining: start * remaining) if annealed else start

    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[a.activation]
    sizes = list(a.hidden_sizes)
    # an image: SB3's CnnPolicy, its heads linear on the Nature CNN's 512 features as ours (networks/cnn.py)
    network = dict(net_arch=[]) if images else dict(net_arch=dict(pi=sizes, vf=sizes), activation_fn=activation)
    algorithm, policy = PPO, "CnnPolicy" if images else "MlpPolicy"
    if a.recurrent:
        from sb3_contrib import RecurrentPPO

        algorithm, policy = RecurrentPPO, "CnnLstmPolicy" if images else "MlpLstmPolicy"
        network.update(lstm_hidden_size=a.recurrent_size or (128 if images else 64), shared_lstm=True,
                       enable_critic_lstm=False)
    return algorithm(policy, envs, learning_rate=linear(a.learning_rate, a.anneal_lr),
                n_steps=a.num_steps_collected,
                batch_size=a.num_envs * a.num_steps_collected // a.num_mini_batches, n_epochs=a.num_epochs,
                gamma=a.gae_gamma, gae_lambda=a.gae_lambda, clip_range=linear(a.clip_coeff, a.anneal_clip),
                clip_range_vf=a.clip_coeff if a.clip_value_loss else None, ent_coef=a.ent_loss_coeff,
                vf_coef=a.value_loss_coeff, max_grad_norm=a.max_gradient, seed=seed, device="cpu",
                policy_kwargs=dict(**network, ortho_init=a.ortho_init, log_std_init=a.initial_log_std))


def run_sb3_atari(env_id: str, steps: int, seed: int) -> float:
    """SB3 PPO with main_atari.py's default hyperparameters on SB3's own Atari preprocessing (AtariWrapper: no-ops,
    frame skip 4 with max-pool, episodic life, FIRE on reset, clipped rewards, 84x84 gray; 4 frames stacked).
    Its Monitor sits under the wrappers: the returns are whole games' unclipped scores, as ours."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from wrappers.vector import register_atari

    register_atari()
    env_kwargs = {"frameskip": 1} if env_id.startswith("ALE/") else None  # v5 ids skip frames themselves
    envs = VecFrameStack(make_atari_env(env_id, n_envs=8, seed=seed, env_kwargs=env_kwargs), n_stack=4)
    lr0 = 2.5e-4
    model = PPO("CnnPolicy", envs, learning_rate=lambda remaining: lr0 * remaining, n_steps=128, batch_size=256,
                n_epochs=4, gamma=0.99, gae_lambda=0.95, clip_range=0.1, clip_range_vf=0.1, ent_coef=0.01,
                vf_coef=0.5, max_grad_norm=0.5, seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    returns = [info["r"] for info in model.ep_info_buffer][-20:]
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", choices=("main.py", "main_atari.py"), default="main.py")
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Acrobot-v1", "Pendulum-v1"])
    parser.add_argument("--total-timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--sb3", action="store_true", help="also train Stable-Baselines3 PPO and print the ratio")
    parser.add_argument("--sb3-only", action="store_true", help="train Stable-Baselines3 PPO only")
    parser.add_argument("--sb3-monitor-dir", help="where SB3's Monitor writes each run's episodes (for a curve)")
    parser.add_argument("--evaluate", type=int, default=0, metavar="EPISODES",
                        help="also play each final model this many episodes with the deterministic policy")
    parser.add_argument("extra", nargs="*", help="extra flags for the script, after --")
    args = parser.parse_args()
    if args.script == "main_atari.py":
        sb3 = run_sb3_atari
    elif args.extra:  # --tuned, or other flags: SB3 with what main.py runs with
        def sb3(env_id: str, steps: int, seed: int) -> float:
            monitor_dir = args.sb3_monitor_dir and f"{args.sb3_monitor_dir}/{env_id}__{seed}"
            return run_sb3_like(env_id, steps, seed, args.extra, monitor_dir)
    else:
        sb3 = run_sb3

    if args.sb3_only:
        print("| env | steps | Stable-Baselines3 |")
        for env_id in args.envs:
            theirs = [sb3(env_id, args.total_timesteps, seed) for seed in args.seeds]
            print(f"| {env_id} | {args.total_timesteps:,} | {np.mean(theirs):.1f} ± {np.std(theirs):.1f} |"
                  f"   per seed: {[round(x, 1) for x in theirs]}", flush=True)
        return
    print(f"| env | steps | this project (seeds {args.seeds[0]}–{args.seeds[-1]}) |"
          + (f" deterministic, {args.evaluate} episodes |" if args.evaluate else "")
          + (" Stable-Baselines3 | ratio |" if args.sb3 else ""))
    for env_id in args.envs:
        runs = [run_ours(args.script, env_id, args.total_timesteps, seed, args.extra, args.evaluate)
                for seed in args.seeds]
        ours = [score for score, _ in runs]
        row = f"| {env_id} | {args.total_timesteps:,} | {np.mean(ours):.1f} ± {np.std(ours):.1f} |"
        if args.evaluate:
            played = [evaluated for _, evaluated in runs]
            row += f" {np.mean(played):.1f} ± {np.std(played):.1f} {[round(x, 1) for x in played]} |"
        if args.sb3:
            theirs = [sb3(env_id, args.total_timesteps, seed) for seed in args.seeds]
            row += f" {np.mean(theirs):.1f} ± {np.std(theirs):.1f} | {np.mean(ours) / np.mean(theirs):.2f} |"
        print(row + f"   per seed: {[round(x, 1) for x in ours]}", flush=True)


if __name__ == "__main__":
    main()

"""Play whole episodes with a trained agent of either script and report its returns.

    python -m ppo.evaluate PATH --episodes N [--deterministic] [--best] [--capture-video] [--use-gpu]

PATH is a run directory (its model.pt, or its newest checkpoint while the run is unfinished) or a checkpoint
file. The env is rebuilt from the saved flags; Atari games are played whole with their real score (no reward
clipping), each life started as in training (the same restart step and frame stack on every backend), on the
gymnasium backend, whose frames tests/test_backends.py shows equal to the other backends'.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from networks.actor_critic import ActorCritic, action_mask
from ppo import checkpoint
from ppo.cli import OneLineParser, UsageError, check_directory, checked, count, seed_number
from ppo.config import atari_frame_stack, select_device
from ppo.normalize import ObservationNormalizer

BEST_MODEL_FILE = "best_model.pt"  # written by evaluation during training (ppo/periodic_eval.py)


@dataclass
class Evaluation:
    returns: np.ndarray
    lengths: np.ndarray


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m ppo.evaluate",
                           description="Play episodes with a trained agent and report its returns")
    parser.add_argument("path", metavar="PATH",
                        help="a run directory (its model.pt, else its newest checkpoint) or a checkpoint file")
    parser.add_argument("--episodes", type=count, default=10, help="number of episodes to play (default: 10)")
    parser.add_argument("--deterministic", action="store_true",
                        help="take the most likely action (the Gaussian mean) instead of sampling (default: False)")
    parser.add_argument("--capture-video", action="store_true",
                        help="record every episode as an mp4 file (default: False)")
    parser.add_argument("--video-dir", default=None,
                        help="where the videos go (default: videos/<run name>-eval)")
    parser.add_argument("--seed", type=seed_number, default=0,
                        help="seed of the first episode's reset (default: 0)")
    parser.add_argument("--best", action="store_true",
                        help="play the run's best_model.pt, the best policy of its evaluations during training "
                             "(--eval-every), instead of its final model (default: False)")
    parser.add_argument("--use-gpu", action="store_true", help="run the network on CUDA (default: False)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: False)")
    return parser


def make_env(script: str, env_id: str, saved: dict, video_dir: str | None = None) -> tuple[gym.Env, gym.Space]:
    """One env of the kind a run of ``script`` with flags ``saved`` trained on, evaluation variant (Atari: whole
    games on the gymnasium backend, real scores), and the observation space its network reads; runs saved
    before a flag existed get its default."""
    if script == "main":
        from wrappers.classic import check_classic_env, make_classic_env
        from wrappers.images import ImageOptions

        env_kwargs, wrappers, images = dict(saved.get("env_kwargs", [])), saved.get("env_wrapper", []), \
            ImageOptions.from_args(saved)
        observation_space, _ = check_classic_env(env_id, video_dir is not None, env_kwargs, wrappers, images)
        return make_classic_env(env_id, video_dir, every_episode=True, env_kwargs=env_kwargs, env_wrappers=wrappers,
                                images=images), observation_space
    if script == "main_atari":
        from wrappers.atari import check_atari_env, make_atari_env

        check_atari_env(env_id)
        env = make_atari_env(env_id, video_dir, evaluation=True, every_episode=True,
                             frame_stack=atari_frame_stack(saved))
        return env, env.observation_space
    raise UsageError(f"argument PATH: checkpoint of an unknown script {script!r}")


def make_env_and_agent(payload: dict, video_dir: str | None, device: torch.device
                       ) -> tuple[gym.Env, ActorCritic, ObservationNormalizer | None]:
    """The env the agent was trained on (one copy, evaluation variant) and the agent with its saved weights."""
    from networks import actor_critic_for
    from networks.mlp import network_options

    env, observation_space = make_env(payload["script"], payload["env_id"], payload["args"], video_dir)
    agent = actor_critic_for(observation_space, env.action_space, network_options(payload["args"]), device)
    agent.load_state_dict(payload["model"])
    normalizer = None
    if payload["obs_rms"] is not None:
        normalizer = ObservationNormalizer(env.observation_space.shape)
        normalizer.rms.load_state_dict(payload["obs_rms"])
    return env, agent.eval(), normalizer


def evaluate(env: gym.Env, agent: ActorCritic, normalizer: ObservationNormalizer | None, episodes: int,
             deterministic: bool, device: torch.device, seed: int = 0, progress: bool = False) -> Evaluation:
    """Plays ``episodes`` episodes; returns and lengths as RecordEpisodeStatistics counts them in training. Where
    the env gives ``info["action_mask"]``, actions are chosen among those it allows, as in training."""
    returns, lengths = [], []
    obs, info = env.reset(seed=seed)
    # A recurrent agent's state, carried through each episode (and each Atari life, as in training), zeroed at
    # its start; None for a feed-forward one.
    state, start = agent.initial_state(1, device), torch.ones(1, dtype=torch.bool, device=device)
    with tqdm(total=episodes, unit="episode", disable=not progress, desc="evaluating") as bar:
        while len(returns) < episodes:
            if normalizer is not None:
                obs = normalizer(obs[None], update=False)[0]
            mask = action_mask(info, agent.head, device)
            with torch.no_grad():
                action, _, _, state = agent.act_in_state(torch.as_tensor(np.asarray(obs), device=device)[None],
                                                         state, start, deterministic,
                                                         None if mask is None else mask[None])
            obs, _, terminated, truncated, info = env.step(action[0].cpu().numpy())
            start.fill_(bool(terminated or truncated))
            if terminated or truncated:
                if "episode" in info:  # else an Atari life ended: the reset starts the next one, as in training
                    returns.append(float(info["episode"]["r"]))
                    lengths.append(int(info["episode"]["l"]))
                    bar.update(1)
                if len(returns) < episodes:  # no reset after the last one: it would start one more video
                    obs, info = env.reset()
    return Evaluation(np.array(returns), np.array(lengths))


def best_model_path(path_text: str) -> str:
    """A run directory's best_model.pt, for --best; a UsageError where the run has none."""
    best = Path(path_text) / BEST_MODEL_FILE
    if not best.is_file():
        raise UsageError(f"argument --best: {path_text!r} has no {BEST_MODEL_FILE}: no evaluation ran during its "
                         "training (train with --eval-every N), or PATH is not a run directory")
    return str(best)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def check():
        loaded = checkpoint.load(best_model_path(args.path) if args.best else args.path, "argument PATH",
                                 prefer_model=True)
        video_dir = (args.video_dir or f"videos/{loaded.run_dir.name}-eval") if args.capture_video else None
        if video_dir:
            check_directory(video_dir, "--video-dir" if args.video_dir else "--capture-video")
        return loaded, video_dir, select_device(args.use_gpu)

    loaded, video_dir, device = checked(parser, check)
    env, agent, normalizer = checked(parser, lambda: make_env_and_agent(loaded.payload, video_dir, device))
    result = evaluate(env, agent, normalizer, args.episodes, args.deterministic, device, args.seed,
                      progress=sys.stdout.isatty() and not args.no_progress)
    env.close()
    policy = "deterministic" if args.deterministic else "stochastic"
    print(f"{args.episodes} episodes of {loaded.payload['env_id']} ({policy} policy, {loaded.path}, step "
          f"{loaded.payload.get('global_step', 0):,}): return {result.returns.mean():.2f} ± "
          f"{result.returns.std():.2f}, length {result.lengths.mean():.1f} ± {result.lengths.std():.1f}")
    if video_dir:
        print(f"videos: {video_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What both entry scripts do after their own checks: seed, build, train, save, summarize."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from gymnasium.vector import VectorEnv

from networks.actor_critic import ActorCritic
from ppo.checkpoint import save_model
from ppo.config import TrainConfig, UsageError, seed_everything
from ppo.normalize import ObservationNormalizer, RewardScaler
from ppo.tracking import RunLogger, run_name
from ppo.train import train

T = TypeVar("T")


def checked(parser: argparse.ArgumentParser, check: Callable[[], T]) -> T:
    """Runs every input check; a UsageError becomes one line on stderr and exit status 2."""
    try:
        return check()
    except UsageError as error:
        parser.error(str(error))


def run_training(args: argparse.Namespace, script: str, make_envs: Callable[[str | None], VectorEnv],
                 make_agent: Callable[[VectorEnv], ActorCritic], device: torch.device,
                 obs_normalizer: ObservationNormalizer | None = None,
                 reward_scaler: RewardScaler | None = None) -> int:
    """``make_envs(video_dir)`` builds the vector env; everything after the checks happens here, once."""
    seed_everything(args.seed, args.deterministic_torch)
    cfg = TrainConfig.from_args(args)
    name = run_name(args.environment_id, args.exp_name, args.seed)
    envs = make_envs(f"videos/{name}" if args.capture_video else None)
    agent = make_agent(envs).to(device)
    logger = RunLogger(Path(args.log_dir) / name, args, cfg.num_updates * cfg.batch_size,
                       show_progress=sys.stdout.isatty() and not args.no_progress)
    result = train(envs, agent, cfg, device, logger, obs_normalizer, reward_scaler)
    envs.close()
    save_model(logger.run_dir / "model.pt", agent, args, script, obs_normalizer, reward_scaler)
    print(logger.close(result.global_step, result.seconds))
    if args.timings:
        print("time per phase: " + ", ".join(f"{name} {seconds:.2f} s ({seconds / result.seconds:.0%})"
                                              for name, seconds in result.phase_seconds.items()))
    return 0

"""PPO on Gymnasium envs with flat observations: classic control, Box2D, and the like."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym

from networks import MLPActorCritic
from ppo.checkpoint import save_model
from ppo.config import (
    CLASSIC,
    TrainConfig,
    UsageError,
    add_normalization_flags,
    build_parser,
    check_batch,
    seed_everything,
    select_device,
)
from ppo.normalize import ObservationNormalizer, RewardScaler
from ppo.tracking import RunLogger, run_name
from ppo.train import train
from wrappers.classic import check_classic_env, make_classic_envs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(CLASSIC)
    add_normalization_flags(parser)
    args = parser.parse_args(argv)
    try:  # every check before any env, directory or file is made
        check_batch(args)
        observation_space, action_space = check_classic_env(args.environment_id)
        device = select_device(args.use_gpu)
    except UsageError as error:
        parser.error(str(error))

    seed_everything(args.seed, args.deterministic_torch)
    cfg = TrainConfig.from_args(args)
    name = run_name(args.environment_id, args.exp_name, args.seed)
    continuous = isinstance(action_space, gym.spaces.Box)
    obs_normalizer = ObservationNormalizer(observation_space.shape) \
        if continuous and args.normalize_observation else None
    # Reward scaling for every action space: it keeps value targets near unit scale, where the value clip range
    # (--clip-coeff) and the global grad-norm clip are meant to act (CartPole-v1 at 100k steps: 258 -> 499).
    reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma) if args.normalize_reward else None

    envs = make_classic_envs(args.environment_id, cfg.num_envs,
                             video_dir=f"videos/{name}" if args.capture_video else None)
    agent = MLPActorCritic(observation_space, action_space).to(device)
    logger = RunLogger(Path(args.log_dir) / name, args, cfg.num_updates * cfg.batch_size,
                       show_progress=sys.stdout.isatty() and not args.no_progress)
    result = train(envs, agent, cfg, device, logger, obs_normalizer, reward_scaler)
    envs.close()
    save_model(logger.run_dir / "model.pt", agent, args, "main", obs_normalizer, reward_scaler)
    print(logger.close(result.global_step, result.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

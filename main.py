"""PPO on Gymnasium envs: classic control, Box2D (CarRacing's images included), MuJoCo, and your own."""

from __future__ import annotations

import argparse

import gymnasium as gym

from networks import actor_critic_for
from networks.mlp import network_options
from ppo.cli import UsageError, checked
from ppo.config import (
    CLASSIC,
    TrainingParser,
    add_env_kwargs_flag,
    add_image_flags,
    add_network_flags,
    add_normalization_flags,
    build_parser,
    check_batch,
    check_output_paths,
    select_device,
)
from ppo.normalize import ObservationNormalizer, RewardScaler
from ppo.runner import exit_process, parse_arguments, run_training
from wrappers.classic import check_classic_env, check_vec_backend, make_classic_envs
from wrappers.images import ImageOptions


def build_main_parser() -> TrainingParser:
    """main.py's flags: the original ones and the extras, the env's keyword arguments, normalization, network."""
    parser = build_parser(CLASSIC)
    add_env_kwargs_flag(parser)
    add_image_flags(parser)
    add_normalization_flags(parser)
    add_network_flags(parser)
    return parser


def normalizes_observations(args: argparse.Namespace, action_space: gym.Space,
                            observation_space: gym.Space | None = None) -> bool:
    """Observations are normalized for Box action spaces unless --no-normalize-observation, and for any action
    space with --normalize-observation; never where they hold images (the network scales pixels itself)."""
    if observation_space is not None and not (isinstance(observation_space, gym.spaces.Box)
                                              and len(observation_space.shape) == 1):
        return False
    return (isinstance(action_space, gym.spaces.Box) and args.normalize_observation) or args.normalize_any_observation


def check_image_normalization(args: argparse.Namespace, observation_space: gym.Space) -> None:
    """--normalize-observation asked for an observation that holds images: one line, rather than a flag that
    silently does nothing (images are scaled in the network; normalize vector parts in an --env-wrapper)."""
    if args.normalize_any_observation and not (isinstance(observation_space, gym.spaces.Box)
                                               and len(observation_space.shape) == 1):
        raise UsageError(f"argument --normalize-observation: {args.environment_id!r} observes images; they are "
                         "scaled to [0, 1] in the network and never normalized (a Dict's vector parts can be, "
                         "in an --env-wrapper)")


def main(argv: list[str] | None = None) -> int:
    parser = build_main_parser()
    args, resumed = parse_arguments(parser, argv, "main")
    env_kwargs, images = dict(args.env_kwargs), ImageOptions.from_args(args)

    def check():  # every check before any env, directory or file is made
        check_batch(args)
        check_output_paths(args)
        spaces = check_classic_env(args.environment_id, args.capture_video, env_kwargs, args.env_wrapper, images)
        check_vec_backend(args.environment_id, args.vec_backend, args.env_wrapper, images)
        check_image_normalization(args, spaces[0])
        return (*spaces, select_device(args.use_gpu))

    observation_space, action_space, device = checked(parser, check)

    normalize = normalizes_observations(args, action_space, observation_space)
    obs_normalizer = ObservationNormalizer(observation_space.shape) if normalize else None
    # Reward scaling for every action space: it keeps value targets near unit scale, where the value clip range
    # (--clip-coeff) and the global grad-norm clip are meant to act (docs/how-it-trains.md has the measurement).
    reward_scaler = RewardScaler(args.num_envs, args.gae_gamma) if args.normalize_reward else None

    return run_training(
        args, "main",
        make_envs=lambda video_dir: make_classic_envs(args.environment_id, args.num_envs, video_dir,
                                                      args.vec_backend, env_kwargs, args.env_wrapper, images),
        make_agent=lambda envs: actor_critic_for(observation_space, action_space, network_options(args), device),
        device=device, obs_normalizer=obs_normalizer, reward_scaler=reward_scaler, resumed=resumed,
    )


if __name__ == "__main__":
    exit_process(main())

"""PPO on ALE Atari games with the standard preprocessing and the Nature CNN."""

from __future__ import annotations

from networks import actor_critic_for
from networks.mlp import network_options
from ppo.cli import checked
from ppo.config import (
    ATARI,
    TrainingParser,
    add_atari_flags,
    atari_frame_stack,
    build_parser,
    check_batch,
    check_output_paths,
    select_device,
)
from ppo.runner import exit_process, parse_arguments, run_training
from wrappers.atari import check_atari_env
from wrappers.atari_backends import choose_env_backend, make_atari_envs
from wrappers.envpool_atari import check_envpool


def build_atari_parser() -> TrainingParser:
    """main_atari.py's flags: the original ones and the extras, the env backend."""
    parser = build_parser(ATARI)
    add_atari_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_atari_parser()
    args, resumed = parse_arguments(parser, argv, "main_atari")

    def check():  # every check before any env, directory or file is made
        check_batch(args)
        check_output_paths(args)
        check_atari_env(args.environment_id)
        args.env_backend = choose_env_backend(args.env_backend, args.capture_video, args.vec_backend)
        if args.env_backend == "envpool":
            check_envpool(args.environment_id)
        return select_device(args.use_gpu)

    device = checked(parser, check)
    return run_training(
        args, "main_atari",
        make_envs=lambda video_dir: make_atari_envs(args.environment_id, args.num_envs, video_dir,
                                                    args.vec_backend, args.env_backend,
                                                    frame_stack=atari_frame_stack(args)),
        make_agent=lambda envs: actor_critic_for(envs.single_observation_space, envs.single_action_space,
                                                 network_options(args), device),
        device=device, resumed=resumed,
    )


if __name__ == "__main__":
    exit_process(main())

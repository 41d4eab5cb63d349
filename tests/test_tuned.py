"""main.py --tuned (ppo/tuned.py), the network flags a row needs, and MuJoCo envs."""

import gymnasium as gym
import pytest
import torch
from conftest import only_run_dir

import main
from ppo import evaluate
from ppo.cli import UsageError
from ppo.config import check_batch
from ppo.runner import parse_arguments
from ppo.tuned import TUNED


def parse(argv):
    return parse_arguments(main.build_main_parser(), argv, "main")[0]


def test_tuned_gives_the_rows_values_and_the_command_line_wins():
    args = parse(["--tuned", "--environment-id", "HalfCheetah-v5", "--num-epochs", "3"])
    assert args.num_epochs == 3  # given: kept
    assert (args.num_steps_collected, args.num_mini_batches, args.learning_rate, args.gae_gamma) == \
        (512, 8, 2.0633e-05, 0.98)
    assert (args.hidden_sizes, args.activation, args.ortho_init, args.initial_log_std) == \
        ([256, 256], "relu", False, -2.0)
    assert args.total_timesteps == 1_000_000 and not args.anneal_lr
    plain = parse(["--environment-id", "HalfCheetah-v5"])
    assert (plain.num_epochs, plain.hidden_sizes, plain.total_timesteps) == (4, [64, 64], 25000)  # the originals


def test_a_switch_a_row_turns_off_or_on_can_be_turned_back_on_the_command_line():
    """Each row's booleans have both forms, so the command line wins either way."""
    cheetah = ["--tuned", "--environment-id", "HalfCheetah-v5"]
    assert (parse(cheetah).anneal_lr, parse([*cheetah, "--anneal-lr"]).anneal_lr) == (False, True)
    assert (parse(cheetah).ortho_init, parse([*cheetah, "--ortho-init"]).ortho_init) == (False, True)
    assert (parse(cheetah).clip_value_loss, parse([*cheetah, "--clip-value-loss"]).clip_value_loss) == (False, True)
    cartpole = ["--tuned", "--environment-id", "CartPole-v1"]
    assert (parse(cartpole).anneal_clip, parse([*cartpole, "--no-anneal-clip"]).anneal_clip) == (True, False)
    lander = ["--tuned", "--environment-id", "LunarLander-v3"]
    assert (parse(lander).normalize_reward, parse([*lander, "--normalize-reward"]).normalize_reward) == (False, True)
    # MountainCar's row normalizes its (discrete-action) observations; --no-normalize-observation turns that off.
    car = ["--tuned", "--environment-id", "MountainCar-v0"]
    assert parse(car).normalize_any_observation
    off = parse([*car, "--no-normalize-observation"])
    assert not off.normalize_observation and not off.normalize_any_observation
    novel = ["--tuned", "--environment-id", "CartPoleNoVel-v1"]  # the row without its memory, for comparison
    assert (parse(novel).recurrent, parse([*novel, "--no-recurrent"]).recurrent) == ("gru", None)
    # ... and the row's --sequence-length goes with its memory; one given on the command line is still refused
    pendulum = ["--tuned", "--environment-id", "PendulumNoVel-v1"]
    assert (parse(pendulum).sequence_length, parse([*pendulum, "--no-recurrent"]).sequence_length) == (128, None)
    with pytest.raises(UsageError, match="--sequence-length"):
        check_batch(parse([*pendulum, "--no-recurrent", "--sequence-length", "64"]))
    # Without --tuned the twins change nothing: they restore the defaults.
    assert vars(parse(["--anneal-lr", "--ortho-init", "--clip-value-loss", "--no-anneal-clip",
                       "--normalize-reward", "--no-recurrent"])) == vars(parse([]))


def test_every_row_is_a_valid_command_line():
    parser_dests = vars(parse([]))
    for env_id, row in TUNED.items():
        assert set(row.flags) <= set(parser_dests), env_id
        args = parse(["--tuned", "--environment-id", env_id])
        check_batch(args)
        if args.recurrent:  # the row without its memory, for comparison, is a valid command line too
            check_batch(parse(["--tuned", "--environment-id", env_id, "--no-recurrent"]))
        assert (args.num_envs * args.num_steps_collected) % args.num_mini_batches == 0, env_id
        if args.recurrent:  # a minibatch is whole envs' rollouts, or pieces of --sequence-length steps
            pieces_per_env = 1
            if args.sequence_length:
                assert args.num_steps_collected % args.sequence_length == 0, env_id
                pieces_per_env = args.num_steps_collected // args.sequence_length
            assert (args.num_envs * pieces_per_env) % args.num_mini_batches == 0, env_id
        assert row.source.startswith(("rl-baselines3-zoo hyperparams/ppo.yml", "rl-baselines3-zoo hyperparams/"
                                      "ppo_lstm.yml", "CleanRL ")), env_id  # named


def test_tuned_for_an_env_without_a_row_is_one_line_listing_the_rows(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["--tuned", "--environment-id", "MountainCarContinuous-v0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no tuned settings for 'MountainCarContinuous-v0'" in err[0]
    assert all(env_id in err[0] for env_id in TUNED)


def test_network_flags_are_saved_and_evaluation_rebuilds_the_network(tmp_path, capsys):
    log_dir = tmp_path / "runs"
    assert main.main(["--environment-id", "Pendulum-v1", "--total-timesteps", "512", "--hidden-sizes", "32", "16",
                      "--activation", "relu", "--no-ortho-init", "--initial-log-std", "-1", "--log-dir",
                      str(log_dir), "--no-progress"]) == 0
    run_dir = only_run_dir(log_dir)
    saved = torch.load(run_dir / "model.pt", weights_only=True)
    assert saved["args"]["hidden_sizes"] == [32, 16] and saved["model"]["actor.0.weight"].shape == (32, 3)
    assert saved["model"]["head.log_std"].shape == (1,)
    assert evaluate.main([str(run_dir), "--episodes", "1", "--no-progress"]) == 0
    assert "1 episodes of Pendulum-v1" in capsys.readouterr().out


def test_normalize_observation_for_discrete_actions(tmp_path):
    log_dir = tmp_path / "runs"
    assert main.main(["--total-timesteps", "512", "--normalize-observation", "--log-dir", str(log_dir),
                      "--no-progress"]) == 0
    assert torch.load(only_run_dir(log_dir) / "model.pt", weights_only=True)["obs_rms"] is not None


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"])
def test_mujoco_envs_train(tmp_path, env_id):
    """gymnasium[mujoco] is in requirements.txt: each MuJoCo env trains (a few updates, tuned network)."""
    log_dir = tmp_path / "runs"
    assert main.main(["--tuned", "--environment-id", env_id, "--total-timesteps", "512", "--num-envs", "1",
                      "--num-steps-collected", "256", "--num-mini-batches", "4", "--num-epochs", "1",
                      "--log-dir", str(log_dir), "--no-progress"]) == 0
    saved = torch.load(only_run_dir(log_dir) / "model.pt", weights_only=True)
    assert saved["model"]["head.log_std"].shape == gym.spec(env_id).make().action_space.shape


def test_anneal_clip_lowers_the_clip_coefficient_linearly_to_0(monkeypatch, tmp_path):
    import ppo.train

    seen, real_update = [], ppo.train.update_policy

    def spy(agent, optimizer, batch, cfg, world):
        seen.append(cfg.clip_coef)
        return real_update(agent, optimizer, batch, cfg, world)

    monkeypatch.setattr(ppo.train, "update_policy", spy)
    assert main.main(["--total-timesteps", "2048", "--anneal-clip", "--log-dir", str(tmp_path / "a"),
                      "--no-progress"]) == 0
    assert seen == pytest.approx([0.2, 0.15, 0.1, 0.05])  # 4 updates of 512 steps
    # Extended to 8 updates: on from what update 4 used (0.05) towards 0 after update 8, as the learning rate.
    seen.clear()
    run_dir = next((tmp_path / "a").iterdir())
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "4096", "--no-progress"]) == 0
    assert seen == pytest.approx([0.05 * (1 - k / 5) for k in range(1, 5)])
    seen.clear()
    assert main.main(["--total-timesteps", "1024", "--log-dir", str(tmp_path / "b"), "--no-progress"]) == 0
    assert seen == [0.2, 0.2]


def test_a_run_extended_before_the_clip_coefficient_was_saved_anneals_it_from_the_flag():
    from ppo.config import TrainConfig
    from ppo.train import clip_coef_at, learning_rate_at

    args = parse(["--anneal-clip", "--total-timesteps", "2048"])  # 4 updates of 512
    args.anneal_from = [2, 1e-4]  # (update, learning rate): what such a checkpoint holds
    cfg = TrainConfig.from_args(args)
    assert learning_rate_at(cfg, 3) == pytest.approx(1e-4 * (1 - 1 / 2))
    assert [clip_coef_at(cfg, update) for update in range(4)] == pytest.approx([0.2, 0.15, 0.1, 0.05])


def test_rows_use_stable_baselines3s_plain_value_loss():
    assert parse(["--tuned"]).clip_value_loss is False and parse([]).clip_value_loss is True
    assert parse(["--tuned"]).anneal_clip is True  # CartPole-v1's lin_0.2

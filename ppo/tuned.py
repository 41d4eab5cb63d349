"""``main.py --tuned``: hyperparameters known to work, one row per env, each with its source.

A row gives new defaults: flags given on the command line still win. Sources are rl-baselines3-zoo's
``hyperparams/ppo.yml`` (DLR-RM/rl-baselines3-zoo, the tuned Stable-Baselines3 settings behind its published
scores) and CleanRL's ``ppo_continuous_action.py`` defaults. Translated into this trainer's flags:
``batch_size`` (SB3's minibatch size) becomes --num-mini-batches = n_envs × n_steps / batch_size; ``normalize``
(VecNormalize: observations and rewards) becomes the normalization flags; a constant learning rate is
--no-anneal-lr (``lin_`` rates are annealed, as here by default), an annealed clip range (``lin_0.2``)
--anneal-clip; SB3 clips no value loss unless told to (``clip_range_vf``): --no-clip-value-loss in every zoo row
(CleanRL clips it, and so does the Hopper-v5 row); SB3's default 64-64 tanh network, orthogonal initialization and
log-std 0 are this trainer's defaults. What cannot be translated is left out and said in the row's source: gSDE
(``use_sde``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppo.cli import UsageError

ZOO = "rl-baselines3-zoo hyperparams/ppo.yml"
ZOO_LSTM = "rl-baselines3-zoo hyperparams/ppo_lstm.yml"
CLEANRL = ("CleanRL ppo_continuous_action.py's defaults: SB3's PPO defaults with the learning rate annealed and "
           "the value loss clipped")


@dataclass(frozen=True)
class Row:
    source: str
    flags: dict[str, Any]  # argparse destinations -> values


# Shared by the zoo's MuJoCo rows that change the network.
ZOO_MUJOCO_NETWORK = dict(hidden_sizes=[256, 256], activation="relu", ortho_init=False, initial_log_std=-2.0)
# SB3's PPO defaults, which CleanRL's ppo_continuous_action.py shares, for one env: 2048 steps, minibatches of 64.
SB3_DEFAULTS = dict(num_envs=1, num_steps_collected=2048, num_mini_batches=32, num_epochs=10, learning_rate=3e-4,
                    gae_gamma=0.99, gae_lambda=0.95, clip_coeff=0.2, ent_loss_coeff=0.0, value_loss_coeff=0.5,
                    max_gradient=0.5)

TUNED: dict[str, Row] = {
    "CartPole-v1": Row(f"{ZOO} CartPole-v1", dict(
        num_envs=8, num_steps_collected=32, num_mini_batches=1, num_epochs=20, learning_rate=1e-3,
        gae_gamma=0.98, gae_lambda=0.8, ent_loss_coeff=0.0, anneal_clip=True, total_timesteps=100_000)),
    "Acrobot-v1": Row(f"{ZOO} Acrobot-v1 (normalize: observations too), with the learning rate annealed where "
                      "the zoo's is constant (seeds 1-3 at 500k steps: -78.5 ± 0.9 annealed, -80.7 ± 4.9 constant)",
                      dict(num_envs=16, num_steps_collected=256, num_mini_batches=64, num_epochs=4,
                           learning_rate=3e-4, gae_gamma=0.99, gae_lambda=0.94, ent_loss_coeff=0.0,
                           normalize_any_observation=True, total_timesteps=500_000)),
    "MountainCar-v0": Row(f"{ZOO} MountainCar-v0 (normalize: observations too)", dict(
        num_envs=16, num_steps_collected=16, num_mini_batches=4, num_epochs=4, learning_rate=3e-4,
        anneal_lr=False, gae_gamma=0.99, gae_lambda=0.98, ent_loss_coeff=0.0, normalize_any_observation=True,
        total_timesteps=1_000_000)),
    "Pendulum-v1": Row(f"{ZOO} Pendulum-v1 without gSDE (use_sde), which this trainer does not have; with this "
                       "trainer's observation and reward normalization in its place (without either, seeds 1-3 "
                       "ended at -427, -1163, -353 after 200k steps)", dict(
        num_envs=4, num_steps_collected=1024, num_mini_batches=64, num_epochs=10, learning_rate=1e-3,
        anneal_lr=False, gae_gamma=0.9, gae_lambda=0.95, ent_loss_coeff=0.0, total_timesteps=200_000)),
    "LunarLander-v3": Row(f"{ZOO} LunarLander-v2", dict(
        num_envs=16, num_steps_collected=1024, num_mini_batches=256, num_epochs=4, learning_rate=3e-4,
        anneal_lr=False, gae_gamma=0.999, gae_lambda=0.98, ent_loss_coeff=0.01, normalize_observation=False,
        normalize_reward=False, total_timesteps=1_000_000)),
    "LunarLanderContinuous-v3": Row(f"{ZOO} LunarLanderContinuous-v2", dict(
        num_envs=16, num_steps_collected=1024, num_mini_batches=256, num_epochs=4, learning_rate=3e-4,
        anneal_lr=False, gae_gamma=0.999, gae_lambda=0.98, ent_loss_coeff=0.01, normalize_observation=False,
        normalize_reward=False, total_timesteps=1_000_000)),
    "HalfCheetah-v5": Row(f"{ZOO} HalfCheetah-v3", dict(
        num_envs=1, num_steps_collected=512, num_mini_batches=8, num_epochs=20, learning_rate=2.0633e-05,
        anneal_lr=False, gae_gamma=0.98, gae_lambda=0.92, clip_coeff=0.1, ent_loss_coeff=0.000401762,
        value_loss_coeff=0.58096, max_gradient=0.8, total_timesteps=1_000_000, **ZOO_MUJOCO_NETWORK)),
    "Hopper-v5": Row(f"{CLEANRL}; the zoo's Hopper-v3 row (256-256 ReLU, log-std -2, 512 steps, gamma 0.999) "
                     "stood still at the healthy reward's 1,000 per episode here (docs/performance.md)", dict(
        **SB3_DEFAULTS, clip_value_loss=True, total_timesteps=1_000_000)),
    "Walker2d-v5": Row(f"{ZOO} Walker2d-v3", dict(
        num_envs=1, num_steps_collected=512, num_mini_batches=16, num_epochs=20, learning_rate=5.05041e-05,
        anneal_lr=False, gae_gamma=0.99, gae_lambda=0.95, clip_coeff=0.1, ent_loss_coeff=0.000585045,
        value_loss_coeff=0.871923, max_gradient=1.0, total_timesteps=1_000_000)),
    "CarRacing-v3": Row(f"{ZOO} CarRacing-v0: its preprocessing (resize 64, grayscale, frame stack 2, rewards "
                        "normalized, observations not), learning rate lin_1e-4 and log-std -2; left out: gSDE "
                        "(use_sde), its FrameSkip 2 wrapper, the heads' 256-unit GELU layers after the CNN and "
                        "ortho_init=False (this trainer's CNN heads are linear on the CNN's 512 features, "
                        "orthogonally initialized, as for Atari); 1M steps of the zoo's 4M", dict(
        num_envs=8, num_steps_collected=512, num_mini_batches=32, num_epochs=10, learning_rate=1e-4,
        gae_gamma=0.99, gae_lambda=0.95, clip_coeff=0.2, ent_loss_coeff=0.0, value_loss_coeff=0.5, max_gradient=0.5,
        initial_log_std=-2.0, normalize_observation=False, frame_stack=2, grayscale=True, resize=[64, 64],
        total_timesteps=1_000_000)),
    # Memory (--recurrent): the zoo's sb3-contrib RecurrentPPO rows, its NoVel envs as wrappers/novel.py registers
    # them. A minibatch here is whole envs' rollouts, so --num-mini-batches divides --num-envs (the zoo's
    # batch_size cuts sequences into pieces of that many samples); its LSTM comes before 64-64 tanh layers, ours
    # after them (networks/recurrent.py). The CartPole and Pendulum rows take a GRU in place of the zoo's LSTM,
    # which learned both more slowly here; the runs behind that, and behind what else each row changes, are in
    # docs/memory.md.
    "CartPoleNoVel-v1": Row(f"{ZOO_LSTM} CartPoleNoVel-v1's layout (8 envs × 32 steps in one minibatch), a GRU in "
                            "place of its LSTM, the other values from a ppo.tune study with the GRU, which learn "
                            "more steadily than the zoo's here (docs/memory.md)", dict(
        num_envs=8, num_steps_collected=32, num_mini_batches=1, num_epochs=10, learning_rate=1.164e-3,
        gae_gamma=0.9905, gae_lambda=0.9994, clip_coeff=0.2, ent_loss_coeff=0.002682, value_loss_coeff=0.7869,
        max_gradient=1.726, clip_value_loss=True, hidden_sizes=[64], activation="relu", normalize_observation=True,
        normalize_any_observation=True, normalize_reward=True, recurrent="gru", total_timesteps=100_000)),
    "PendulumNoVel-v1": Row(f"{ZOO_LSTM} PendulumNoVel-v1, a GRU in place of its LSTM, without gSDE, with "
                            "normalization and a wider initial action noise (log-std 0.5) in its place; "
                            "minibatches of one piece of 128 steps (the zoo's: 64 samples); γ 0.95 in place of its "
                            "0.9 (docs/memory.md)", dict(
        num_envs=4, num_steps_collected=1024, num_mini_batches=32, sequence_length=128, num_epochs=10,
        learning_rate=1e-3, anneal_lr=False, gae_gamma=0.95, gae_lambda=0.95, ent_loss_coeff=0.0,
        initial_log_std=0.5, recurrent="gru", total_timesteps=100_000)),
    "MountainCarContinuousNoVel-v0": Row(f"{ZOO_LSTM} MountainCarContinuousNoVel-v0 without gSDE (its log-std "
                                         "-3.29 and no orthogonal initialization kept)", dict(
        num_envs=1, num_steps_collected=8, num_mini_batches=1, num_epochs=10, learning_rate=7.77e-05,
        anneal_lr=False, gae_gamma=0.9999, gae_lambda=0.9, clip_coeff=0.1, ent_loss_coeff=0.00429,
        value_loss_coeff=0.19, max_gradient=5.0, initial_log_std=-3.29, ortho_init=False,
        normalize_any_observation=True, recurrent="lstm", total_timesteps=300_000)),
    "LunarLanderNoVel-v3": Row(f"{ZOO_LSTM} LunarLanderNoVel-v2; minibatches of one env's 1,024 steps (the "
                               "zoo's: 64 samples)", dict(
        num_envs=16, num_steps_collected=1024, num_mini_batches=16, num_epochs=4, learning_rate=3e-4,
        anneal_lr=False, gae_gamma=0.999, gae_lambda=0.98, ent_loss_coeff=0.01, normalize_observation=False,
        normalize_reward=False, recurrent="lstm", total_timesteps=1_000_000)),
    "LunarLanderContinuousNoVel-v3": Row(f"{ZOO_LSTM} LunarLanderContinuousNoVel-v2; minibatches of one env's "
                                         "1,024 steps (the zoo's: 64 samples)", dict(
        num_envs=16, num_steps_collected=1024, num_mini_batches=16, num_epochs=4, learning_rate=3e-4,
        anneal_lr=False, gae_gamma=0.999, gae_lambda=0.98, ent_loss_coeff=0.01, normalize_observation=False,
        normalize_reward=False, recurrent="lstm", total_timesteps=1_000_000)),
    "Ant-v5": Row(f"{ZOO} Ant-v3 (SB3's defaults, normalize)", dict(
        **SB3_DEFAULTS, anneal_lr=False, total_timesteps=1_000_000)),
    "Humanoid-v5": Row(f"{ZOO} Humanoid-v3", dict(
        num_envs=1, num_steps_collected=512, num_mini_batches=2, num_epochs=5, learning_rate=3.56987e-05,
        anneal_lr=False, gae_gamma=0.95, gae_lambda=0.9, clip_coeff=0.3, ent_loss_coeff=0.00238306,
        value_loss_coeff=0.431892, max_gradient=2.0, total_timesteps=10_000_000, **ZOO_MUJOCO_NETWORK)),
}


def tuned_flags(env_id: str) -> dict[str, Any]:
    """The row's flags for ``env_id`` (with SB3's plain value loss unless the row says otherwise), or a
    UsageError listing the envs that have a row."""
    if env_id not in TUNED:
        raise UsageError(f"argument --tuned: no tuned settings for {env_id!r}; there are rows for "
                         f"{', '.join(TUNED)} (ppo/tuned.py)")
    return {"clip_value_loss": False, **TUNED[env_id].flags}

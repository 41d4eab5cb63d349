"""What a training run holds between updates: the one object a checkpoint saves and restores."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from networks.actor_critic import ActorCritic
from ppo.adam import Adam
from ppo.normalize import ObservationNormalizer, RewardScaler
from ppo.rng import rng_states, set_rng_states


@dataclass
class TrainState:
    """Everything that changes as training goes and that a checkpoint must hold to continue a run."""

    agent: ActorCritic
    optimizer: Adam
    obs_normalizer: ObservationNormalizer | None = None
    reward_scaler: RewardScaler | None = None
    update: int = 0  # updates completed
    global_step: int = 0  # env steps (all envs together) of the completed updates

    def rollout_start(self) -> dict:
        """What a rollout changes besides the env: observation statistics and the random generators (the reward
        scaler changes only once a rollout is complete)."""
        return {"rng": rng_states(), "obs": copy.deepcopy(self.obs_normalizer)}

    def roll_back(self, saved: dict) -> None:
        """Back to the state after the last completed update (an interrupted rollout is dropped)."""
        set_rng_states(saved["rng"])
        if self.obs_normalizer is not None:
            self.obs_normalizer.rms = saved["obs"].rms

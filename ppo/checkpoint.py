"""Saving what a trained agent needs to be used again: weights, normalization statistics, the arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from ppo.normalize import ObservationNormalizer, RewardScaler


def save_model(path: Path, agent: nn.Module, args: argparse.Namespace, script: str,
               obs_normalizer: ObservationNormalizer | None = None,
               reward_scaler: RewardScaler | None = None) -> None:
    torch.save(
        {
            "script": script,
            "env_id": args.environment_id,
            "args": vars(args),
            "model": agent.state_dict(),
            "obs_rms": obs_normalizer.rms.state_dict() if obs_normalizer else None,
            "reward_rms": reward_scaler.rms.state_dict() if reward_scaler else None,
        },
        path,
    )

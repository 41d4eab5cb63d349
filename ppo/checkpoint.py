"""Checkpoints (everything a run needs to continue) and the final model (everything an agent needs to act).

A checkpoint is a dict of plain values and tensors, so it loads with ``torch.load(weights_only=True)``: no
pickled code runs when a file is opened. Files are written to a temporary name and renamed into place, so a kill
during a write never leaves a broken file under a checkpoint's name.
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppo.cli import UsageError
from ppo.normalize import RunningMeanStd
from ppo.rng import rng_states, set_rng_states
from ppo.state import TrainState

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.pt"


# ---- what is saved ------------------------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    import gymnasium

    versions = {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": np.__version__,
                "gymnasium": gymnasium.__version__}
    try:
        import ale_py

        versions["ale_py"] = ale_py.__version__
    except ImportError:  # pragma: no cover - ale-py is in requirements.txt
        pass
    return versions


def _rms(rms: RunningMeanStd | None) -> dict | None:
    """RunningMeanStd.state_dict with its arrays as tensors (weights_only-loadable; its load_state_dict takes
    them back as they are)."""
    if rms is None:
        return None
    state = rms.state_dict()
    return {"mean": torch.tensor(state["mean"]), "var": torch.tensor(state["var"]), "count": state["count"]}


def model_payload(state: TrainState, args: argparse.Namespace, script: str, world_size: int = 1
                  ) -> dict[str, Any]:
    """What evaluation needs: the weights, normalization statistics, and how the agent was made (and by how many
    processes under torchrun: a resumed run needs as many)."""
    return {
        "script": script,
        "env_id": args.environment_id,
        "args": vars(args),
        "model": state.agent.state_dict(),
        "obs_rms": _rms(state.obs_normalizer.rms if state.obs_normalizer else None),
        "reward_rms": _rms(state.reward_scaler.rms if state.reward_scaler else None),
        "global_step": state.global_step,
        "update": state.update,
        "world_size": world_size,
        "versions": library_versions(),
    }


def checkpoint_payload(state: TrainState, args: argparse.Namespace, script: str, world_size: int = 1
                       ) -> dict[str, Any]:
    """The model plus what continuing needs: optimizer state and random generator states (rank 0's)."""
    return {**model_payload(state, args, script, world_size), "optimizer": state.optimizer.state_dict(),
            "rng": rng_states()}


def write_atomically(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as file:
        torch.save(payload, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def checkpoint_name(global_step: int) -> str:
    return f"step_{global_step:012d}.pt"  # zero-padded: name order is step order


def checkpoints_in(run_dir: Path) -> list[Path]:
    """A run's checkpoints, oldest first."""
    return sorted((run_dir / CHECKPOINT_DIR).glob("step_*.pt"))


class CheckpointWriter:
    """Writes ``<run dir>/checkpoints/step_<global step>.pt`` and keeps the newest ``keep`` of them. A process
    killed in the middle of a write leaves only a hidden temporary file (write_atomically), removed at the next
    save; every file under a checkpoint's name is complete (test_checkpoint.py kills a real writer)."""

    def __init__(self, run_dir: Path, keep: int) -> None:
        self.run_dir = run_dir
        self.keep = keep

    def save(self, payload: dict[str, Any]) -> Path:
        path = self.run_dir / CHECKPOINT_DIR / checkpoint_name(payload["global_step"])
        write_atomically(payload, path)
        for old in checkpoints_in(self.run_dir)[:-self.keep]:
            old.unlink()
        for stale in (self.run_dir / CHECKPOINT_DIR).glob(".step_*.pt.tmp"):
            stale.unlink(missing_ok=True)
        return path


# ---- loading ------------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    payload: dict[str, Any]
    path: Path  # the file read
    run_dir: Path


def run_dir_of(path: Path) -> Path:
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


def load(path_text: str, flag: str, prefer_model: bool) -> Loaded:
    """A checkpoint file, or a run directory's newest checkpoint (``prefer_model``: its model.pt first).

    Anything that is not a readable checkpoint is a UsageError naming ``flag`` and the path."""
    path = Path(path_text)
    if path.is_dir():
        candidates = [path / MODEL_FILE] if prefer_model else []
        candidates = [c for c in [*candidates, *checkpoints_in(path)[::-1]] if c.is_file()]
        if not candidates:
            raise UsageError(f"{flag}: {path_text!r} is a directory without {MODEL_FILE} or {CHECKPOINT_DIR}/*.pt: "
                             "not a run directory")
        path = candidates[0]
    elif not path.is_file():
        raise UsageError(f"{flag}: {path_text!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated, foreign or non-torch files
        unsafe = "Unsupported global" in str(error)
        reason = ("it holds Python objects other than tensors and plain values (not written by this project)"
                  if unsafe else f"not a complete PyTorch file ({type(error).__name__}): truncated or corrupt?")
        raise UsageError(f"{flag}: cannot read checkpoint {str(path)!r}: {reason}") from None
    if not isinstance(payload, dict) or not {"script", "args", "model"} <= payload.keys():
        raise UsageError(f"{flag}: {str(path)!r} is not a checkpoint of this project")
    return Loaded(payload, path, run_dir_of(path))


def restore(state: TrainState, payload: dict[str, Any]) -> None:
    """Puts a checkpoint's weights, optimizer, statistics, counters and generator states into ``state``."""
    state.agent.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    for normalizer, key in ((state.obs_normalizer, "obs_rms"), (state.reward_scaler, "reward_rms")):
        if normalizer is not None and payload[key] is not None:
            normalizer.rms.load_state_dict(payload[key])
    state.update = int(payload["update"])
    state.global_step = int(payload["global_step"])
    set_rng_states(payload["rng"])

"""Evaluation during training (--eval-every N): every N env steps the current policy plays whole episodes on an
env of its own, and the best policy so far is kept as best_model.pt.

It runs around the loop, not in it: the runner calls it after each update (with the checkpoints). Its env is made
apart from the training envs, as ppo.evaluate makes one (Atari: whole games, real scores); the observation
statistics are applied, never updated; its random draws come from generators of its own (torch.random.fork_rng),
so a run trains the very same weights with or without it (test_periodic_eval.py).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import gymnasium as gym
import torch

from ppo import checkpoint
from ppo.evaluate import BEST_MODEL_FILE, evaluate, make_env
from ppo.state import TrainState
from ppo.tracking import RunLogger

EVALUATIONS_FILE = "evaluations.csv"
COLUMNS = ("global_step", "mean_return", "std_return", "mean_length", "episodes", "deterministic", "seconds")
EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes are seeded apart from the training envs' seeds


def deterministic_evaluation(args: argparse.Namespace, script: str) -> bool:
    """main.py evaluates the deterministic policy unless --eval-stochastic; Atari samples unless
    --eval-deterministic, as rl-baselines3-zoo does (a deterministic Atari policy can stand still forever)."""
    if script == "main_atari":
        return bool(getattr(args, "eval_deterministic", False))
    return not getattr(args, "eval_stochastic", False)


def best_so_far(run_dir: Path) -> float:
    """The highest mean return in the run's evaluations.csv (-inf where none): a resumed or extended run keeps
    its best model unless it beats it."""
    path = run_dir / EVALUATIONS_FILE
    if not path.is_file():
        return -math.inf
    with open(path, newline="") as file:
        return max((float(row["mean_return"]) for row in csv.DictReader(file)), default=-math.inf)


class PeriodicEvaluation:
    def __init__(self, args: argparse.Namespace, script: str, run_dir: Path, logger: RunLogger,
                 device: torch.device, start_step: int, world_size: int = 1) -> None:
        self.args, self.script, self.run_dir, self.logger, self.device = args, script, run_dir, logger, device
        self.every, self.episodes, self.world_size = args.eval_every, args.eval_episodes, world_size
        self.deterministic = deterministic_evaluation(args, script)
        self.env: gym.Env = make_env(script, args.environment_id, vars(args))[0]
        self.best = best_so_far(run_dir)
        self.seconds = 0.0
        self.evaluations = 0
        self.next_step = self.following(start_step)

    def following(self, step: int) -> int:
        """The first multiple of --eval-every past ``step``."""
        return (step // self.every + 1) * self.every

    def after_update(self, state: TrainState) -> None:
        """Evaluates where the update crossed a multiple of --eval-every (at most once per update)."""
        if state.global_step >= self.next_step:
            self.next_step = self.following(state.global_step)
            self.evaluate(state)

    def evaluate(self, state: TrainState) -> None:
        start = time.perf_counter()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.args.seed + EVAL_SEED_OFFSET + state.global_step)
            result = evaluate(self.env, state.agent, state.obs_normalizer, self.episodes, self.deterministic,
                              self.device, seed=self.args.seed + EVAL_SEED_OFFSET + self.evaluations * self.episodes)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        self.evaluations += 1
        mean, std, length = float(result.returns.mean()), float(result.returns.std()), float(result.lengths.mean())
        self.logger.add_scalars({"eval/mean_return": mean, "eval/std_return": std, "eval/mean_length": length},
                                state.global_step)
        self.append_row((state.global_step, mean, std, length, self.episodes, self.deterministic, round(seconds, 3)))
        if mean > self.best:
            self.best = mean
            checkpoint.write_atomically(checkpoint.model_payload(state, self.args, self.script, self.world_size),
                                        self.run_dir / BEST_MODEL_FILE)

    def append_row(self, row: tuple) -> None:
        path = self.run_dir / EVALUATIONS_FILE
        new = not path.is_file()
        with open(path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(COLUMNS)
            writer.writerow(row)

    def summary(self) -> str:
        """For the run's summary line: how many evaluations, the time they took, the best mean return."""
        best = f", best mean return {self.best:.2f}" if math.isfinite(self.best) else ""
        return f"{self.evaluations} evaluations in {self.seconds:.1f} s{best}"

    def close(self) -> None:
        self.env.close()

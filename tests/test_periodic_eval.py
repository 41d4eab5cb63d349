"""Evaluation during training (--eval-every, ppo/periodic_eval.py): its results, the best model, resume, and a
training run left exactly as it would be without it."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, only_run_dir, read_scalars

import main
import main_atari
from ppo import evaluate, periodic_eval
from ppo.evaluate import Evaluation

FLAGS = ["--total-timesteps", "4096", "--no-progress"]  # 8 updates of 4 envs x 128 steps


def rows(run_dir) -> list[dict]:
    with open(run_dir / "evaluations.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_evaluation_does_not_change_what_is_trained(tmp_path):
    """Its env, its seeds and its random draws are its own: the same weights, bit for bit (same code, same
    inputs, same machine), with evaluations every 1,024 steps as without."""
    assert main.main([*FLAGS, "--log-dir", str(tmp_path / "plain")]) == 0
    assert main.main([*FLAGS, "--eval-every", "1024", "--eval-stochastic", "--log-dir", str(tmp_path / "eval")]) == 0
    plain, evaluated = (torch.load(only_run_dir(tmp_path / name) / "model.pt", weights_only=True)["model"]
                        for name in ("plain", "eval"))
    assert all(torch.equal(plain[key], evaluated[key]) for key in plain)
    run_dir = only_run_dir(tmp_path / "eval")
    assert [int(row["global_step"]) for row in rows(run_dir)] == [1024, 2048, 3072, 4096]
    assert all(row["episodes"] == "5" and row["deterministic"] == "False" for row in rows(run_dir))
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["eval/mean_return"]] == [1024, 2048, 3072, 4096]
    assert {"eval/std_return", "eval/mean_length"} <= scalars.keys()
    means = [float(row["mean_return"]) for row in rows(run_dir)]
    assert [value for _, value in scalars["eval/mean_return"]] == pytest.approx(means)  # float32 in TensorBoard


def scripted(returns: list[float]):
    """ppo.periodic_eval's evaluate, returning the given mean returns one evaluation after the other."""
    remaining = list(returns)

    def evaluate_(env, agent, normalizer, episodes, deterministic, device, seed=0, progress=False):
        value = remaining.pop(0)
        return Evaluation(np.full(episodes, value), np.full(episodes, 10))

    return evaluate_


def test_the_best_model_is_the_one_whose_evaluation_beat_every_earlier_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(periodic_eval, "evaluate", scripted([1.0, 5.0, 3.0, 7.0, 2.0, 6.0, 7.0, 4.0]))
    assert main.main([*FLAGS, "--eval-every", "512", "--log-dir", str(tmp_path)]) == 0
    assert "8 evaluations in" in capsys.readouterr().out  # the summary line says what they cost
    run_dir = only_run_dir(tmp_path)
    best = torch.load(run_dir / "best_model.pt", weights_only=True)
    assert best["global_step"] == 2048  # the first 7.0; the second 7.0 does not beat it
    final = torch.load(run_dir / "model.pt", weights_only=True)
    assert best.keys() == final.keys()  # the model format of model.pt
    assert not all(torch.equal(best["model"][key], final["model"][key]) for key in final["model"])
    assert evaluate.main([str(run_dir), "--best", "--episodes", "1", "--no-progress"]) == 0
    assert "best_model.pt, step 2,048" in capsys.readouterr().out


def test_an_extended_run_keeps_its_best_until_it_is_beaten(tmp_path, monkeypatch):
    monkeypatch.setattr(periodic_eval, "evaluate", scripted([3.0, 9.0, 4.0, 8.0, 2.0, 1.0, 9.5, 1.0]))
    assert main.main(["--total-timesteps", "2048", "--eval-every", "512", "--no-progress", "--log-dir",
                      str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert torch.load(run_dir / "best_model.pt", weights_only=True)["global_step"] == 1024
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "3072", "--no-progress"]) == 0
    assert torch.load(run_dir / "best_model.pt", weights_only=True)["global_step"] == 1024  # 2.0 and 1.0 < 9.0
    assert main.main(["--resume", str(run_dir), "--total-timesteps", "4096", "--no-progress"]) == 0
    assert torch.load(run_dir / "best_model.pt", weights_only=True)["global_step"] == 3584  # 9.5 beat it
    assert [int(row["global_step"]) for row in rows(run_dir)] == [512 * k for k in range(1, 9)]


def test_atari_evaluation_samples_unless_told_otherwise():
    parse = main_atari.build_atari_parser().parse_args
    assert not periodic_eval.deterministic_evaluation(parse([]), "main_atari")
    assert periodic_eval.deterministic_evaluation(parse(["--eval-deterministic"]), "main_atari")
    assert periodic_eval.deterministic_evaluation(main.build_main_parser().parse_args([]), "main")
    assert not periodic_eval.deterministic_evaluation(main.build_main_parser().parse_args(["--eval-stochastic"]),
                                                      "main")


@pytest.mark.slow
def test_an_atari_run_evaluates_whole_games(tmp_path):
    assert main_atari.main(["--environment-id", "ALE/Pong-v5", "--num-envs", "2", "--total-timesteps", "512",
                            "--eval-every", "256", "--eval-episodes", "1", "--no-progress", "--log-dir",
                            str(tmp_path)]) == 0
    evaluations = rows(only_run_dir(tmp_path))
    assert len(evaluations) == 2
    assert all(float(row["mean_return"]) <= -15 for row in evaluations)  # a whole game of Pong, lost at 21


def test_best_without_an_evaluation_is_one_line(tmp_path):
    assert main.main(["--total-timesteps", "512", "--no-progress", "--log-dir", str(tmp_path)]) == 0
    result = subprocess.run([sys.executable, "-m", "ppo.evaluate", str(only_run_dir(tmp_path)), "--best"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--eval-every" in result.stderr

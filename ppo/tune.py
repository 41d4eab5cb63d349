"""Hyperparameter search with Optuna, each trial a real run of main.py or main_atari.py.

    python -m ppo.tune --environment-id Pendulum-v1 --trials 30 --total-timesteps 50000 --jobs 2
    python -m ppo.tune --environment-id Pendulum-v1 --trials 60 --total-timesteps 50000 --storage URL   # each machine
    python -m ppo.tune --study-name NAME --storage URL --show

A trial samples the flags of SEARCH_SPACE (fixed flags after -- are never searched), then trains the script with
them once per seed, with evaluation during training (--eval-every a fifth of the run); each evaluation is reported
to Optuna, whose median pruner stops trials that fall behind. A trial's value is the mean over its seeds of the
final evaluation's mean return. The study lives in Optuna storage (SQLite in the study's directory by default; any
URL Optuna takes lets several machines share it); the same command again goes on with the trials it has. At the
end the best trials are printed, with the best flags as a command line, and saved as best.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppo.cli import OneLineParser, UsageError, checked, count

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("main.py", "main_atari.py")
EVALUATIONS_PER_RUN = 5
HEARTBEAT_SECONDS, GRACE_SECONDS = 5, 20  # a trial whose process died is failed by the next one after the grace


@dataclass(frozen=True)
class Choice:
    """One searched flag: ``values`` to choose among, or a (low, high) range, on a log scale where ``log``.
    ``one_minus``: the flag is 1 - the sampled value (γ and λ near 1, sampled as the zoo does)."""

    values: tuple | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    one_minus: bool = False
    main_only: bool = False  # a flag main_atari.py does not have


# The search space, from rl-baselines3-zoo's sample_ppo_params (rl_zoo3/hyperparams_opt.py), adapted to these
# flags: its batch_size (a minibatch's samples) becomes --num-mini-batches = batch / size (a size above the batch is
# the whole batch, as the zoo clamps it; one that does not divide the batch is pruned at once); net_arch
# tiny/small/medium: --hidden-sizes 64 / 64 64 / 256 256;
# its normalize (VecNormalize) the two normalization switches; vf_coef as its older versions sampled it; γ from
# 0.9, where its older versions' choices began (its one_minus_gamma up to 0.03 left out Pendulum's 0.9: a study of
# 30 trials of 50k steps found -891 at best, whose flags scored -1,170 at 200k; docs/tune.md).
SEARCH_SPACE: dict[str, Choice] = {
    "--num-steps-collected": Choice(values=(32, 64, 128, 256, 512, 1024, 2048)),
    "minibatch_size": Choice(values=(32, 64, 128, 256, 512)),
    "--num-epochs": Choice(values=(1, 5, 10, 20)),
    "--learning-rate": Choice(low=1e-5, high=2e-3, log=True),
    "--gae-gamma": Choice(low=1e-4, high=0.1, log=True, one_minus=True),
    "--gae-lambda": Choice(low=1e-4, high=0.1, log=True, one_minus=True),
    "--clip-coeff": Choice(values=(0.1, 0.2, 0.3, 0.4)),
    "--ent-loss-coeff": Choice(low=1e-8, high=0.1, log=True),
    "--value-loss-coeff": Choice(low=0.2, high=1.0),
    "--max-gradient": Choice(low=0.3, high=2.0),
    "--hidden-sizes": Choice(values=("64", "64 64", "256 256"), main_only=True),
    "--activation": Choice(values=("tanh", "relu"), main_only=True),
    "--normalize-observation": Choice(values=(True, False), main_only=True),
    "--normalize-reward": Choice(values=(True, False), main_only=True),
}
SWITCHES = {"--normalize-observation": ("--normalize-observation", "--no-normalize-observation"),
            "--normalize-reward": ("--normalize-reward", "--no-normalize-reward")}


class TrialError(Exception):
    """A trial's run failed (the env raised, a value turned non-finite, the script refused its flags)."""


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m ppo.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment-id", help="the env to tune for (required unless --show)")
    parser.add_argument("--script", choices=SCRIPTS, default="main.py", help="the script (default: main.py)")
    parser.add_argument("--trials", type=count, default=20,
                        help="finished trials the study should have: completed, pruned or failed (default: 20)")
    parser.add_argument("--total-timesteps", type=count, default=50_000, help="steps of each run (default: 50000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds of each trial (default: 1)")
    parser.add_argument("--jobs", type=count, default=1,
                        help="trials at once on this machine, each run with one thread (default: 1)")
    parser.add_argument("--study-name", default=None, help="default: <env>__<script>")
    parser.add_argument("--storage", default=None,
                        help="an Optuna storage URL (default: sqlite:///<study dir>/study.db)")
    parser.add_argument("--study-dir", default=None, help="where trials and best.json go (default: runs/tune/<study>)")
    parser.add_argument("--show", action="store_true", help="print the study's best trials and exit")
    parser.add_argument("fixed", nargs="*", help="flags of the script after --, fixed for every trial")
    return parser


def sample(trial: Any, fixed: list[str], script: str, num_envs: int) -> list[str]:
    """The trial's flags: one value per flag of SEARCH_SPACE that ``fixed`` does not set."""
    flags: list[str] = []
    steps = None
    for flag, choice in SEARCH_SPACE.items():
        if (choice.main_only and script != "main.py") or flag in fixed or any(
                switch in fixed for switch in SWITCHES.get(flag, ())):
            continue
        name = flag.lstrip("-").replace("-", "_")
        if choice.values is not None:
            value = trial.suggest_categorical(name, list(choice.values))
        else:
            value = trial.suggest_float(("one_minus_" if choice.one_minus else "") + name, choice.low, choice.high,
                                        log=choice.log)
            value = 1 - value if choice.one_minus else value
        if flag == "--num-steps-collected":
            steps = value
        if flag == "minibatch_size":
            if "--num-mini-batches" in fixed:
                continue
            if steps is None:  # fixed after --, or the script's default
                steps = int(fixed[fixed.index("--num-steps-collected") + 1]) if "--num-steps-collected" in fixed \
                    else 128
            batch = num_envs * steps
            value = min(value, batch)  # tests/test_tune.py::test_a_minibatch_above_the_batch_is_the_whole_batch
            if batch % value:
                import optuna

                raise optuna.TrialPruned(f"a batch of {batch} does not split into minibatches of {value}")
            flags += ["--num-mini-batches", str(batch // value)]
        elif flag in SWITCHES:
            flags.append(SWITCHES[flag][0] if value else SWITCHES[flag][1])
        else:
            flags += [flag, *(f"{value:.4g}" if isinstance(value, float) else str(value)).split()]
    return flags


def num_envs_of(script: str, fixed: list[str]) -> int:
    if "--num-envs" in fixed:
        return int(fixed[fixed.index("--num-envs") + 1])
    return 4 if script == "main.py" else 8


def run_seed(command: list[str], run_dir_root: Path, trial: Any, offset: int, eval_every: int) -> float:
    """One run of the script; reports each evaluation (at ``offset`` + its step) and stops the run where Optuna
    prunes the trial. Returns the final evaluation's mean return."""
    import optuna

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(run_dir_root / "output.txt", "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        reported = 0
        while True:
            finished = process.poll() is not None
            rows = evaluations(run_dir_root)
            for row in rows[reported:]:
                trial.report(float(row["mean_return"]), offset + int(row["global_step"]))
                reported += 1
                if trial.should_prune():
                    process.kill()
                    process.wait()
                    raise optuna.TrialPruned(f"pruned at step {int(row['global_step']):,}")
            if finished:
                break
            time.sleep(0.5)
    if process.returncode != 0:
        lines = (run_dir_root / "output.txt").read_text().strip().splitlines()
        # The script's one line: "error: ..." (an env's failure, a non-finite value) or "main.py: error: ..."
        reason = next((line for line in lines if "error: " in line), lines[-1] if lines else "")
        raise TrialError(f"{reason} (exit status {process.returncode})")
    rows = evaluations(run_dir_root)
    if not rows:
        raise TrialError("the run ended without an evaluation")
    return float(rows[-1]["mean_return"])


def evaluations(log_dir: Path) -> list[dict]:
    found = list(log_dir.glob("*/evaluations.csv"))
    if not found:
        return []
    with open(found[0], newline="") as file:
        return list(csv.DictReader(file))


class Objective:
    def __init__(self, args: argparse.Namespace, study_dir: Path) -> None:
        self.args, self.study_dir = args, study_dir
        self.num_envs = num_envs_of(args.script, args.fixed)
        steps = int(args.fixed[args.fixed.index("--num-steps-collected") + 1]) \
            if "--num-steps-collected" in args.fixed else 2048
        self.min_eval = self.num_envs * steps
        self.running: set[int] = set()  # numbers of this process's trials in progress

    def __call__(self, trial: Any) -> float:
        self.running.add(trial.number)
        try:
            return self.run_trial(trial)
        finally:
            self.running.discard(trial.number)

    def run_trial(self, trial: Any) -> float:
        flags = sample(trial, self.args.fixed, self.args.script, self.num_envs)
        trial.set_user_attr("flags", flags)
        rollout = self.num_envs * int(flags[flags.index("--num-steps-collected") + 1]) \
            if "--num-steps-collected" in flags else self.min_eval
        eval_every = max(self.args.total_timesteps // EVALUATIONS_PER_RUN, rollout)
        values = []
        for index, seed in enumerate(self.args.seeds):
            log_dir = self.study_dir / "trials" / f"trial_{trial.number:04d}" / f"seed_{seed}"
            log_dir.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, str(ROOT / self.args.script), "--environment-id", self.args.environment_id,
                       *flags, *self.args.fixed, "--seed", str(seed), "--total-timesteps",
                       str(self.args.total_timesteps), "--eval-every", str(eval_every), "--cpu-threads", "1",
                       "--no-progress", "--log-dir", str(log_dir)]
            try:
                values.append(run_seed(command, log_dir, trial, index * self.args.total_timesteps, eval_every))
            except TrialError as error:
                trial.set_user_attr("error", str(error))
                raise
        return sum(values) / len(values)


def command_line(study: Any, trial: Any) -> str:
    env, script = study.user_attrs["environment_id"], study.user_attrs["script"]
    fixed = study.user_attrs.get("fixed", [])
    return shlex.join(["python", script, "--environment-id", env, *trial.user_attrs["flags"], *fixed])


def report(study: Any, study_dir: Path | None, top: int = 5) -> None:
    """The best trials as a short table and the best flags as a command line; best.json in the study's
    directory."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    print(f"study {study.study_name}: {len(study.trials)} trials ("
          + ", ".join(f"{n} {name}" for name, n in trial_states(study).items() if n) + ")")
    for t in study.trials:
        if "error" in t.user_attrs:
            print(f"  trial {t.number} failed: {t.user_attrs['error']}")
    if not done:
        print("no trial completed yet")
        return
    print("value = mean over the trial's seeds of its final evaluation's mean return")
    print(f"{'trial':>5}  {'value':>10}  flags")
    for t in sorted(done, key=lambda t: t.value, reverse=True)[:top]:
        print(f"{t.number:>5}  {t.value:>10.2f}  {' '.join(t.user_attrs['flags'])}")
    best = study.best_trial
    command = command_line(study, best)
    print(f"best: trial {best.number}, value {best.value:.2f}\n{command}")
    if study_dir is not None:
        (study_dir / "best.json").write_text(json.dumps({
            "study": study.study_name, "trial": best.number, "value": best.value, "params": best.params,
            "flags": best.user_attrs["flags"], "command": command}, indent=2) + "\n")


def fail_left_running(study: Any, numbers: set[int]) -> None:
    """Fails this process's trials that a Ctrl-C left RUNNING: where it lands outside the objective, or in the middle
    of Optuna's own write, Optuna does not fail the trial, which then waits for the heartbeat's grace period."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.number in numbers:
            for _ in range(2):  # a write cut short leaves the session to be rolled back by the first try
                try:
                    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                    break
                except Exception:  # noqa: BLE001 - already finished, or the storage's first answer after the cut
                    continue


def trial_states(study: Any) -> dict[str, int]:
    """Counts by state; a failed trial without an error of its run was interrupted (Ctrl-C, a killed process,
    failed by Optuna's heartbeat once its grace period passed)."""
    import optuna

    state = optuna.trial.TrialState
    counts = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0}
    for t in study.trials:
        key = {state.COMPLETE: "complete", state.PRUNED: "pruned", state.RUNNING: "running"}.get(t.state)
        if key is None and t.state == state.FAIL:
            key = "failed" if "error" in t.user_attrs else "interrupted"
        if key is not None:
            counts[key] += 1
    return counts


def finished(study: Any) -> int:
    """Trials that count towards --trials: completed, pruned, or failed by their run (not interrupted ones)."""
    import optuna

    state = optuna.trial.TrialState
    return sum(t.state in (state.COMPLETE, state.PRUNED) or (t.state == state.FAIL and "error" in t.user_attrs)
               for t in study.trials)


def open_study(args: argparse.Namespace, study_dir: Path | None, create: bool) -> Any:
    import optuna

    url = args.storage or f"sqlite:///{study_dir / 'study.db'}"
    try:
        storage = optuna.storages.get_storage(url) if not url.startswith(("sqlite", "postgresql", "mysql")) else \
            optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS)
        if not create:
            return optuna.load_study(study_name=args.study_name, storage=storage)
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=None)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
        return optuna.create_study(study_name=args.study_name, storage=storage, direction="maximize",
                                   sampler=sampler, pruner=pruner, load_if_exists=True)
    except KeyError:
        raise UsageError(f"argument --study-name: no study {args.study_name!r} in {url}") from None
    except Exception as error:  # Optuna and SQLAlchemy raise many types for a URL they cannot open
        raise UsageError(f"argument --storage: Optuna cannot open {url!r}: {type(error).__name__}: {error}"
                         ) from None


def check_study(study: Any, args: argparse.Namespace) -> None:
    """A study keeps its env, script and fixed flags: another one under the same name is refused."""
    attrs = study.user_attrs
    wanted = {"environment_id": args.environment_id, "script": args.script, "fixed": args.fixed,
              "total_timesteps": args.total_timesteps, "seeds": args.seeds}
    for key, value in wanted.items():
        if key in attrs and attrs[key] != value:
            raise UsageError(f"argument --study-name: study {args.study_name!r} tunes with {key} {attrs[key]}, not "
                             f"{value}: choose another --study-name")
    for key, value in wanted.items():
        study.set_user_attr(key, value)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def check():
        try:
            import optuna
        except ImportError:
            raise UsageError("ppo.tune needs Optuna: pip install -r requirements-tune.txt") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's
        if args.show:
            if not (args.study_name and args.storage):
                raise UsageError("argument --show: give the study's --study-name and --storage")
            return open_study(args, None, create=False), None
        if not args.environment_id:
            raise UsageError("argument --environment-id: required (the env to tune for)")
        args.study_name = args.study_name or f"{args.environment_id.replace('/', '_')}__{Path(args.script).stem}"
        study_dir = Path(args.study_dir or Path("runs") / "tune" / args.study_name.replace(":", "_"))
        study_dir.mkdir(parents=True, exist_ok=True)
        study = open_study(args, study_dir.resolve(), create=True)
        check_study(study, args)
        return study, study_dir

    study, study_dir = checked(parser, check)
    if args.show:
        report(study, None)
        return 0
    remaining = args.trials - finished(study)
    if remaining > 0:
        def stop_when_done(study: Any, _trial: Any) -> None:
            if finished(study) >= args.trials:
                study.stop()

        objective = Objective(args, study_dir.resolve())
        try:
            study.optimize(objective, n_trials=None, n_jobs=args.jobs, catch=(TrialError,),
                           callbacks=[stop_when_done])
        except KeyboardInterrupt:  # Optuna has failed the trial in progress: it shows as interrupted
            fail_left_running(study, objective.running)
            print(f"stopped; the same command goes on with the study's {finished(study)} finished trials",
                  file=sys.stderr)
            return 130
    report(study, study_dir)
    print(f"study directory: {study_dir}  (optuna-dashboard {args.storage or f'sqlite:///{study_dir}/study.db'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

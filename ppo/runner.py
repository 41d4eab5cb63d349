"""What both entry scripts do around the loop: parse (and resume), seed, build, train, checkpoint, summarize."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import torch
from gymnasium.vector import VectorEnv

from networks.actor_critic import ActorCritic
from ppo import checkpoint
from ppo.cli import UsageError, checked
from ppo.config import EXTENDABLE, TrainConfig, TrainingParser, check_bf16
from ppo.distributed import OtherRankFailed, SharedLogger, launched_world_size, start_world
from ppo.faults import EnvError, NonFiniteError, check_weights
from ppo.normalize import ObservationNormalizer, RewardScaler
from ppo.periodic_eval import PeriodicEvaluation
from ppo.rng import seed_everything
from ppo.state import TrainState
from ppo.tracking import RunLogger, WandbMirror, run_name
from ppo.train import TrainResult, clip_coef_at, learning_rate_at, train
from ppo.tuned import tuned_flags
from ppo.update import make_optimizer

EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C
EXIT_FAULT = 1


def parse_arguments(parser: TrainingParser, argv: list[str] | None, script: str
                    ) -> tuple[argparse.Namespace, checkpoint.Loaded | None]:
    """The command line, or with --resume the saved run's flags (plus this command line's other flags). With
    --tuned, the env's row of ppo/tuned.py as defaults under the command line's flags."""
    args = parser.parse_args(argv)
    if getattr(args, "tuned", False) and args.resume is None:
        row = checked(parser, lambda: tuned_flags(args.environment_id))
        parser.set_defaults(**row)
        args = parser.parse_args(argv)
        if row.get("recurrent") and not args.recurrent:  # --no-recurrent: the row's sequence pieces go with it
            parser.set_defaults(sequence_length=None)
            args = parser.parse_args(argv)
    if args.resume is None:
        return args, None
    return checked(parser, lambda: resumed_arguments(parser, args, script))


def resumed_arguments(parser: TrainingParser, args: argparse.Namespace, script: str
                      ) -> tuple[argparse.Namespace, checkpoint.Loaded]:
    loaded = checkpoint.load(args.resume, "argument --resume", prefer_model=False)
    payload = loaded.payload
    if payload["script"] != script or "optimizer" not in payload:
        what = f"a {payload['script']}.py run" if payload["script"] != script else "a final model, not a checkpoint"
        raise UsageError(f"argument --resume: {str(loaded.path)!r} is {what}; {script}.py resumes its own "
                         f"checkpoints ({checkpoint.CHECKPOINT_DIR}/step_*.pt or the run directory)")
    saved, processes = payload["args"], launched_world_size()
    if payload.get("world_size", 1) != processes:
        trained = payload.get("world_size", 1)
        raise UsageError(f"argument --resume: the run was trained by {trained} process(es) "
                         f"(torchrun --nproc_per_node {trained}); resume it with as many, not {processes}")
    kept = [key for key in parser.kept_on_resume() if key in saved]  # a flag newer than the run: this command's
    changed = [key for key in kept if getattr(args, key) not in (parser.get_default(key), saved[key])]
    for key in changed:
        if parser.resume_rules[key] != EXTENDABLE:
            flag, given = "--" + key.replace("_", "-"), getattr(args, key)
            raise UsageError(f"argument --resume: the run was trained with {flag} {saved[key]}, a resumed run keeps "
                             f"its saved flags: drop {flag} {given}")
    merged = argparse.Namespace(**{**vars(args), **{key: saved[key] for key in kept},
                                   "anneal_from": saved.get("anneal_from")})
    if "total_timesteps" in changed:  # the one EXTENDABLE flag
        extend(merged, args.total_timesteps, payload)
    total = TrainConfig.from_args(merged, processes).num_updates
    if payload["update"] >= total:
        raise UsageError(f"argument --resume: the run in {str(loaded.run_dir)!r} already finished "
                         f"({payload['global_step']:,} steps); evaluate it with: python -m ppo.evaluate "
                         f"{loaded.run_dir}, or extend it with --total-timesteps beyond {payload['global_step']:,}")
    return merged, loaded


def extend(merged: argparse.Namespace, total_timesteps: int, payload: dict) -> None:
    """``--resume RUN --total-timesteps N``: the run goes on to N, its learning rate (and clip coefficient) from
    the one its last completed update used, annealed towards 0 at N (docs/checkpoints.md, Resume;
    test_checkpoint.py)."""
    if total_timesteps <= payload["global_step"]:
        raise UsageError(f"argument --total-timesteps: the run is at step {payload['global_step']:,}; to extend it, "
                         f"give more than that (got {total_timesteps:,})")
    last = max(payload["update"] - 1, 0)
    cfg = TrainConfig.from_args(merged, launched_world_size())
    merged.total_timesteps = total_timesteps
    merged.anneal_from = [last, learning_rate_at(cfg, last), clip_coef_at(cfg, last)]


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op CPU threads set to ``threads`` inside (None: unchanged), the previous count restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def exit_process(code: int) -> NoReturn:
    """Ends the process with ``code`` without the interpreter's teardown, which after importing torch takes about
    half a second, a tenth of a default ``python main.py`` as a user times it (docs/performance.md). Call it only
    once the run has closed what it wrote: checkpoints and model.pt are fsynced and renamed, the event writer has
    exited (RunLogger.close waits for it), the envs are closed; here the standard streams are flushed. Under a
    profiler or tracer (``python -m cProfile``, coverage) the process ends normally, so that they write their
    results at exit. test_main.py runs the script and reads its output and files."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def keep_freed_memory() -> bool:
    """Tells glibc's malloc to keep freed memory for reuse; True where it applied (Linux with glibc).

    By default glibc hands large freed blocks straight back to the kernel (those over its mmap threshold, and the
    top of the heap past its trim threshold), so a minibatch step's tensors of several MB (the Nature CNN's 256
    frames in float32 alone are 29 MB) would come back each step as fresh pages, every one zero-filled by a page
    fault (docs/performance.md measures it). Blocks up to 32 MB (glibc's largest mmap threshold) come from the
    heap, and up to 256 MB of freed heap is kept (test_memory.py)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 256 << 20))


class StopSignals:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM into a request to stop after the current step; a second one
    stops at once. Forked env workers inherit the handler and ignore it: only the trainer decides.

    ``grace``: seconds after the first signal in which another is the same request. Under torchrun a Ctrl-C
    reaches each process twice, from the terminal and forwarded by torchrun."""

    def __init__(self, grace: float = 0.0) -> None:
        self.received: str | None = None
        self.pid = os.getpid()
        self.previous: dict[int, Any] = {}
        self.grace, self.first = grace, 0.0

    def __enter__(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if os.getpid() != self.pid:
            return
        if self.received is not None:
            if time.monotonic() - self.first < self.grace:
                return
            raise KeyboardInterrupt
        self.received, self.first = signal.Signals(signum).name, time.monotonic()
        print(f"\n{self.received}: stopping after this step and writing a checkpoint "
              "(send it again to quit at once)", file=sys.stderr, flush=True)

    def requested(self) -> bool:
        return self.received is not None


class Checkpoints:
    """Where and when a run's checkpoints are written: every ``--save-every`` updates, at the end, and at a stop
    or an env's failure; never with a non-finite weight (ppo/faults.py)."""

    def __init__(self, run_dir: Path, args: argparse.Namespace, script: str, cfg: TrainConfig) -> None:
        self.writer = checkpoint.CheckpointWriter(run_dir, args.keep_checkpoints)
        self.args, self.script, self.num_updates, self.world_size = args, script, cfg.num_updates, cfg.world_size
        self.save_every = args.save_every or -(-cfg.num_updates // 10)  # ten per run by default

    def save(self, state: TrainState) -> Path:
        check_weights(state.agent, state.global_step)
        return self.writer.save(checkpoint.checkpoint_payload(state, self.args, self.script, self.world_size))

    def after_update(self, state: TrainState) -> None:
        if state.update % self.save_every == 0 or state.update == self.num_updates:
            self.save(state)

    def save_model(self, state: TrainState) -> None:
        check_weights(state.agent, state.global_step)
        checkpoint.write_atomically(checkpoint.model_payload(state, self.args, self.script, self.world_size),
                                    self.writer.run_dir / checkpoint.MODEL_FILE)


def resume_command(script: str, run_dir: Path, args: argparse.Namespace) -> str:
    processes = launched_world_size()
    launcher = f"torchrun --nproc_per_node {processes}" if processes > 1 else "python"
    return f"resume with: {launcher} {script}.py --resume {run_dir}" + (" --use-gpu" if args.use_gpu else "")


def report_non_finite(error: NonFiniteError, env_id: str, checkpoints: list[Path]) -> int:
    """One line on stderr: what was not finite, where, and what is left; exit status 1."""
    kept = f"the last good checkpoint is {checkpoints[-1]}" if checkpoints else "no checkpoint had been written"
    print(f"error: {error} in {env_id}: training stopped, nothing written after it; {kept}", file=sys.stderr)
    return EXIT_FAULT


def report_env_error(error: EnvError, args: argparse.Namespace, script: str, state: TrainState,
                     saved: Path) -> int:
    """The env's own traceback (it is the user's bug), then one line naming the env, the step and the exception,
    and the command that resumes from the last completed update; exit status 1."""
    cause = error.__cause__
    step = state.global_step if error.global_step is None else error.global_step
    traceback.print_exception(cause)
    print(f"error: {args.environment_id} raised {type(cause).__name__}: {cause} at step {step:,}; "
          f"checkpoint of the last completed update (step {state.global_step:,}): {saved}\n"
          f"{resume_command(script, saved.parent.parent, args)}", file=sys.stderr, flush=True)
    return EXIT_FAULT


def report_stop(signal_name: str, state: TrainState, cfg: TrainConfig, saved: Path, args: argparse.Namespace,
                script: str) -> int:
    print(f"{signal_name}: stopped; checkpoint at step {state.global_step:,} (update {state.update} of "
          f"{cfg.num_updates}): {saved}\n{resume_command(script, saved.parent.parent, args)}", flush=True)
    return EXIT_INTERRUPTED


def close_quietly(envs: VectorEnv) -> None:
    """Closes the envs; after an env's failure, closing may fail too, and must not hide the first error."""
    with contextlib.suppress(Exception):
        envs.close()


def run_training(args: argparse.Namespace, script: str, make_envs: Callable[[str | None], VectorEnv],
                 make_agent: Callable[[VectorEnv], ActorCritic], device: torch.device,
                 obs_normalizer: ObservationNormalizer | None = None, reward_scaler: RewardScaler | None = None,
                 resumed: checkpoint.Loaded | None = None) -> int:
    """``make_envs(video_dir)`` builds the vector env; everything after the checks happens here, once. Under
    torchrun, in each process (ppo/distributed.py); only rank 0 writes."""
    world = start_world(device)
    seed_everything(args.seed + world.rank, args.deterministic_torch)  # each rank its actions; weights: rank 0's
    keep_freed_memory()
    cfg = TrainConfig.from_args(args, world.size)
    if cfg.bf16 and world.is_main and (warning := check_bf16(device)):
        print(warning, file=sys.stderr)
    run_dir = resumed.run_dir if resumed else Path(args.log_dir) / run_name(args.environment_id, args.exp_name,
                                                                               args.seed)
    start_step = resumed.payload["global_step"] if resumed else 0
    video_dir = f"videos/{run_dir.name}" + (f"/resumed-at-{start_step}" if resumed else "")
    envs = make_envs(video_dir if args.capture_video and world.is_main else None)
    agent = make_agent(envs)
    world.share_weights(agent)
    state = TrainState(agent, make_optimizer(agent, cfg.learning_rate), obs_normalizer, reward_scaler)
    for statistics in (obs_normalizer, reward_scaler):
        if statistics is not None:
            statistics.gather_rows = world.gather_rows
    if resumed:
        checkpoint.restore(state, resumed.payload)
        if world.size > 1:  # the checkpoint holds rank 0's generators: the others draw their own
            seed_everything(args.seed + world.rank + state.global_step, args.deterministic_torch)
    mirror = WandbMirror(args, run_dir) if args.track and world.is_main else None
    logger = RunLogger(run_dir, args, cfg.num_updates * cfg.steps_per_update,
                       show_progress=sys.stdout.isatty() and not args.no_progress, start_step=state.global_step,
                       mirror=mirror) if world.is_main else None
    shared = SharedLogger(logger, world) if world.size > 1 else logger
    checkpoints = Checkpoints(run_dir, args, script, cfg) if world.is_main else None
    # Rank 0 evaluates (ppo/periodic_eval.py), before the update's checkpoint, so a checkpoint never predates it.
    evaluation = PeriodicEvaluation(args, script, run_dir, logger, device, state.global_step, world.size) \
        if args.eval_every and world.is_main else None
    hooks = [hook for hook in (evaluation, checkpoints) if hook is not None]
    with StopSignals(grace=5.0 if world.size > 1 else 0.0) as signals, cpu_threads(args.cpu_threads):
        try:
            result = train(envs, state, cfg, device, shared, signals.requested,
                           partial(after_each_update, hooks) if hooks else None, world)
        except (NonFiniteError, EnvError) as error:
            close_quietly(envs)
            shared.close(state.global_step, 0, 0.0)
            code = report_fault(error, args, script, state, run_dir, checkpoints)
            world.close()
            return code
        finally:
            if evaluation is not None:
                evaluation.close()
            if mirror is not None:
                mirror.finish(run_dir, Path(video_dir) if args.capture_video else None)
    envs.close()
    code = finish_run(result, state, cfg, shared, checkpoints, signals, args, script,
                      evaluation.summary() if evaluation else "")
    world.close()
    return code


def after_each_update(hooks: list[PeriodicEvaluation | Checkpoints], state: TrainState) -> None:
    for hook in hooks:
        hook.after_update(state)


def report_fault(error: NonFiniteError | EnvError, args: argparse.Namespace, script: str, state: TrainState,
                 run_dir: Path, checkpoints: Checkpoints | None) -> int:
    """What a fault gets: its report, and for an env's failure the checkpoint of the last completed update (rank
    0 writes it; under torchrun the rank where it happened prints the env's traceback)."""
    own = not isinstance(error.__cause__, OtherRankFailed)
    if checkpoints is None:  # another rank than 0: only what happened here
        if own and isinstance(error, EnvError):
            traceback.print_exception(error.__cause__)
        if own:
            print(f"error: {error if isinstance(error, NonFiniteError) else error.__cause__!r} in "
                  f"{args.environment_id} (this rank's envs)", file=sys.stderr, flush=True)
        return EXIT_FAULT
    if isinstance(error, NonFiniteError):
        return report_non_finite(error, args.environment_id, checkpoint.checkpoints_in(run_dir))
    return report_env_error(error, args, script, state, checkpoints.save(state))


def finish_run(result: TrainResult, state: TrainState, cfg: TrainConfig, logger: RunLogger | SharedLogger,
               checkpoints: Checkpoints | None, signals: StopSignals, args: argparse.Namespace, script: str,
               evaluations: str = "") -> int:
    """A stopped run's checkpoint and resume command, or a finished run's model.pt; the summary line (with
    ``evaluations``, what evaluation during training did). (Ranks other than 0, without ``checkpoints``, only
    end.)"""
    if checkpoints is None:
        logger.close(result.global_step, result.steps, result.seconds)
        return EXIT_INTERRUPTED if result.interrupted else 0
    if result.interrupted:
        saved = checkpoints.save(state)
        print(logger.close(result.global_step, result.steps, result.seconds, evaluations))
        return report_stop(signals.received, state, cfg, saved, args, script)
    checkpoints.save_model(state)
    print(logger.close(result.global_step, result.steps, result.seconds, evaluations))
    if args.timings:
        print("time per phase: " + ", ".join(f"{name} {seconds:.2f} s ({seconds / result.seconds:.0%})"
                                              for name, seconds in result.phase_seconds.items()))
    return 0

"""Where a run's output goes: its directory, TensorBoard scalars, the progress bar and the summary line."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import text as text_summary
from tqdm import tqdm

from ppo import event_writer


class PhaseTimer:
    """Adds up the seconds spent inside ``with timer:`` blocks."""

    __slots__ = ("seconds", "started")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self.started


@dataclass
class PhaseTimers:
    """Where a run's time goes, printed with --timings."""

    env: PhaseTimer = field(default_factory=PhaseTimer)
    inference: PhaseTimer = field(default_factory=PhaseTimer)
    gae: PhaseTimer = field(default_factory=PhaseTimer)
    update: PhaseTimer = field(default_factory=PhaseTimer)

    def seconds(self) -> dict[str, float]:
        return {phase.name: getattr(self, phase.name).seconds for phase in fields(self)}


def run_name(env_id: str, exp_name: str, seed: int) -> str:
    """``<env>__<exp-name>__<seed>__<unix time>``; the '/' of namespaced ids (ALE/Pong-v5) would nest folders."""
    return f"{env_id.replace('/', '_')}__{exp_name}__{seed}__{int(time.time())}"


def hyperparameter_table(args: argparse.Namespace) -> str:
    rows = "\n".join(f"|{key}|{value}|" for key, value in sorted(vars(args).items()))
    return f"|param|value|\n|-|-|\n{rows}"


class WandbMirror:
    """--track: Weights & Biases gets every scalar TensorBoard gets (at its global step), the flags as its config,
    the run's name, and at the end its videos and the evaluation table (evaluations.csv). Its files go into
    ``<run dir>/wandb`` (WANDB_MODE=offline keeps them there, to sync later with ``wandb sync``). A resumed run
    continues the same W&B run (its id is the run directory's name)."""

    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=run_dir.name,
                              id=wandb_id(run_dir.name), resume="allow", dir=str(run_dir), config=vars(args))
        # Every log call is a row of its own with the global step as its x axis: several episodes may end at
        # one step, which one row per step would merge.
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")

    def log(self, values: list[tuple[str, float]], global_step: int) -> None:
        row: dict[str, float] = {}
        for tag, value in values:
            if tag in row:  # another episode at the same step: a row of its own
                self.run.log({**row, "global_step": global_step})
                row = {}
            row[tag] = value
        self.run.log({**row, "global_step": global_step})

    def finish(self, run_dir: Path, video_dir: Path | None) -> None:
        evaluations = run_dir / "evaluations.csv"
        if evaluations.is_file():
            self.run.log({"eval/table": self.wandb.Table(**read_table(evaluations))})
        for video in sorted(video_dir.rglob("*.mp4")) if video_dir is not None and video_dir.is_dir() else []:
            self.run.log({"videos": self.wandb.Video(str(video), format="mp4")})
        self.run.finish()


def wandb_id(name: str) -> str:
    """A W&B run id from a run directory's name (W&B ids take no ':', '/' or '\\')."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:128]


def read_table(path: Path) -> dict[str, list]:
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return {"columns": rows[0], "data": rows[1:]}


class RunLogger:
    """TensorBoard writer plus the terminal view of a run. Created only once every input has been checked."""

    def __init__(self, run_dir: Path, args: argparse.Namespace, total_steps: int, show_progress: bool,
                 recent: int = 20, start_step: int = 0, mirror: WandbMirror | None = None) -> None:
        """``start_step`` > 0 continues a run: TensorBoard drops what the run logged after that step (a rollout
        that was interrupted) and the new events follow on from it. ``mirror`` (--track) gets every scalar too."""
        self.run_dir, self.mirror = run_dir, mirror
        run_dir.mkdir(parents=True, exist_ok=True)
        # The event file is written by a child process (ppo/event_writer.py, which says why); in a session of its
        # own, so that a Ctrl-C meant for training does not cut it off before the last events are written.
        self.events = subprocess.Popen([sys.executable, str(Path(event_writer.__file__)), str(run_dir)],
                                       stdin=subprocess.PIPE, start_new_session=True)
        self.event_stream: IO[bytes] | None = self.events.stdin
        if start_step:
            # TensorBoard drops the events at steps >= a session start's step: those of an interrupted rollout,
            # after the last completed update at start_step (torch's SummaryWriter(purge_step=...) does the same).
            purge = start_step + 1
            self.add_event(Event(step=purge, file_version="brain.Event:2"))
            self.add_event(Event(step=purge, session_log=SessionLog(status=SessionLog.START)))
        else:
            self.add_event(Event(step=0, summary=text_summary("hyperparameters", hyperparameter_table(args))))
        self.recent_returns: deque[float] = deque(maxlen=recent)
        self.episodes = 0
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", unit_scale=True, dynamic_ncols=True,
                        disable=not show_progress, desc="training")

    def add_event(self, event: Event) -> None:
        """Sends an event to the event writer (stamped with the wall time now, as SummaryWriter does). If the
        writer has gone, says so once on stderr; training goes on."""
        event.wall_time = time.time()
        self._to_writer(lambda stream: stream.write(event_writer.frame(event)))

    def _to_writer(self, operation: Callable[[IO[bytes]], object]) -> None:
        """``operation`` on the pipe to the event writer, while there is one; if it fails, the writer has gone."""
        if self.event_stream is None:
            return
        try:
            operation(self.event_stream)
        except OSError as error:
            self._writer_gone(error)

    def _writer_gone(self, error: OSError) -> None:
        print(f"warning: TensorBoard events are no longer written ({error})", file=sys.stderr)
        stream, self.event_stream = self.event_stream, None
        try:
            stream.close()  # closes the pipe even where flushing what is left fails
        except OSError:
            pass

    def add_scalars(self, values: dict[str, float] | list[tuple[str, float]], global_step: int) -> None:
        """Scalars at one step as one TensorBoard event (a Summary with several values, as ``add_scalar``
        writes each of them): tensorboard's writer pays its costs per event."""
        items = list(values.items()) if isinstance(values, dict) else values
        if self.mirror is not None:
            self.mirror.log(items, global_step)
        self.add_event(Event(step=global_step, summary=Summary(
            value=[Summary.Value(tag=tag, simple_value=float(value)) for tag, value in items])))

    def flush(self) -> None:
        """Hands the events so far to the writer process (the pipe's buffer is otherwise sent when full)."""
        self._to_writer(lambda stream: stream.flush())

    def episodes_finished(self, global_step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        returns, lengths = returns.tolist(), lengths.tolist()
        self.add_scalars([item for episodic_return, length in zip(returns, lengths, strict=True)
                          for item in (("charts/episodic_return", episodic_return),
                                       ("charts/episodic_length", length))], global_step)
        self.recent_returns.extend(returns)
        self.episodes += len(returns)

    @property
    def mean_recent_return(self) -> float:
        return float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")

    def update_finished(self, global_step: int, stats: dict[str, float], learning_rate: float, sps: float) -> None:
        self.add_scalars({**{f"losses/{key}": value for key, value in stats.items()},
                          "charts/learning_rate": learning_rate, "charts/SPS": sps}, global_step)
        self.flush()  # once per update: TensorBoard shows each update's curves while the run goes on
        self.bar.set_postfix(SPS=f"{sps:,.0f}", ret=f"{self.mean_recent_return:.1f}", refresh=False)
        self.bar.update(global_step - self.bar.n)

    def close(self, global_step: int, steps: int, seconds: float, extra: str = "") -> str:
        """Closes the writer and bar; returns the one-line summary of the run (``steps`` of which were done
        by this process, in ``seconds``; ``extra``, such as the evaluations' time, before the run directory)."""
        self.bar.close()
        self._to_writer(lambda stream: stream.close())  # end of input: the writer writes what it has and exits
        self.events.wait()
        returns = (f"mean return of the last {len(self.recent_returns)} episodes: {self.mean_recent_return:.2f}"
                   if self.recent_returns else "no episode finished yet")
        resumed = f" (resumed at {global_step - steps:,})" if steps != global_step else ""
        return (f"{global_step:,} steps{resumed} in {seconds:.1f} s ({steps / max(seconds, 1e-9):,.0f} SPS); "
                f"{returns}; {extra + '; ' if extra else ''}run directory: {self.run_dir}")

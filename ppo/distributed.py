"""One policy trained by several processes under torchrun (docs/torchrun.md): what the processes share.

``torchrun --nproc_per_node N main.py ...`` starts N copies of the script, ranks 0 to N-1. Each steps
``--num-envs`` envs of its own (env seeds never shared) and holds the same weights: every minibatch step averages
the gradients of all ranks (one all-reduce over the optimizer's flat gradient, as DistributedDataParallel would)
and normalizes advantages with the moments of all ranks' minibatches, so the step equals one process's step on
the ranks' samples together (test_distributed.py). Observation and reward statistics are updated with every rank's
data, so they too are the same everywhere. Once per update the ranks agree on a fault or a stop, so they end
together. Only rank 0 writes (events, checkpoints, model.pt, videos, the progress bar).

Started without torchrun, the scripts get ``World()``: a world of one process whose methods hand back what they
are given; no process group is made.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ppo.faults import EnvError, NonFiniteError
from ppo.tracking import RunLogger


def launched_world_size() -> int:
    """How many processes torchrun started (its WORLD_SIZE); 1 without torchrun. Makes no process group."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class World:
    """One process: nothing is shared, nothing costs anything."""

    size, rank = 1, 0

    @property
    def is_main(self) -> bool:
        """The rank that writes files and the terminal view."""
        return self.rank == 0

    def average_gradients(self, grad: torch.Tensor) -> None:
        """``grad`` (the optimizer's flat gradient) becomes the mean over the ranks."""

    def normalized_advantages(self, advantages: torch.Tensor) -> torch.Tensor | None:
        """Advantages normalized with the moments of all ranks' minibatches; None: ppo_loss normalizes them."""
        return None

    def gather_rows(self, array: np.ndarray) -> np.ndarray:
        """Every rank's ``array`` (the same shape on each), concatenated along axis 0 in rank order."""
        return array

    def gather_objects(self, item: Any) -> list[Any]:
        """Every rank's ``item``, in rank order."""
        return [item]

    def share_weights(self, module: nn.Module) -> None:
        """Every rank gets rank 0's parameters."""

    def outcome(self, error: Exception | None, complete: bool, stop_requested: bool, global_step: int
                ) -> tuple[Exception | None, bool]:
        """How the rollout after ``global_step`` ended on every rank: the error to raise (an env's failure or a
        non-finite value, here or on another rank) and whether to stop. One process stops where its rollout was
        cut short by a stop."""
        return error, error is None and not complete

    def close(self) -> None:
        pass


class OtherRankFailed(Exception):
    """The cause of an error raised on the ranks whose own envs and values were fine."""


class ProcessGroup(World):
    """The ranks torchrun started, joined by gloo (CPU) or NCCL (CUDA)."""

    def __init__(self, device: torch.device) -> None:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self.size, self.rank, self.device = dist.get_world_size(), dist.get_rank(), device

    def average_gradients(self, grad: torch.Tensor) -> None:
        dist.all_reduce(grad)
        grad.div_(self.size)

    def normalized_advantages(self, advantages: torch.Tensor) -> torch.Tensor:
        moments = torch.stack((advantages.sum(), advantages.square().sum(),
                               advantages.new_tensor(float(advantages.numel()))))
        dist.all_reduce(moments)
        total, squares, count = moments.unbind()
        mean = total / count
        std = ((squares - count * mean.square()).clamp_min(0) / (count - 1).clamp_min(1)).sqrt()  # unbiased
        return (advantages - mean) / (std + 1e-8)

    def gather_rows(self, array: np.ndarray) -> np.ndarray:
        local = torch.as_tensor(np.ascontiguousarray(array), device=self.device)
        parts = [torch.empty_like(local) for _ in range(self.size)]
        dist.all_gather(parts, local)
        return torch.cat(parts).cpu().numpy()

    def gather_objects(self, item: Any) -> list[Any]:
        items: list[Any] = [None] * self.size
        dist.all_gather_object(items, item)
        return items

    def share_weights(self, module: nn.Module) -> None:
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def outcome(self, error: Exception | None, complete: bool, stop_requested: bool, global_step: int
                ) -> tuple[Exception | None, bool]:
        flags = torch.tensor([isinstance(error, EnvError), isinstance(error, NonFiniteError), stop_requested],
                             dtype=torch.int32, device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        env_failed, non_finite, stop = flags.tolist()
        if error is None and env_failed:
            error = EnvError()
            error.__cause__ = OtherRankFailed("an env of another rank raised (its traceback is above)")
        elif error is None and non_finite:
            error = NonFiniteError("value on another rank (its message is above) in the rollout that began",
                                   global_step)
            error.__cause__ = OtherRankFailed()
        return error, bool(stop) and error is None

    def close(self) -> None:
        """Waits for every rank (so that none exits, and torchrun stops the others, while rank 0 still writes its
        checkpoint or model.pt), then leaves the group."""
        dist.barrier()
        dist.destroy_process_group()


def start_world(device: torch.device) -> World:
    """The process group torchrun's environment describes, or a world of one without torchrun. With CUDA, rank r
    of a machine uses its local GPU r (``device`` is then that GPU)."""
    if launched_world_size() == 1:
        return World()
    return ProcessGroup(device)


ONE_PROCESS = World()


class SharedLogger:
    """The run's logging as ranks share it: each rank's finished episodes are held until the update's end, when
    rank 0's RunLogger gets every rank's (``logger`` is None on the other ranks, which write nothing)."""

    def __init__(self, logger: RunLogger | None, world: World) -> None:
        self.logger, self.world = logger, world
        self.pending: list[tuple[int, list[float], list[int]]] = []

    def episodes_finished(self, global_step: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        self.pending.append((global_step, returns.tolist(), lengths.tolist()))

    def update_finished(self, global_step: int, stats: dict[str, float], learning_rate: float, sps: float) -> None:
        everyone = self.world.gather_objects(self.pending)
        self.pending = []
        if self.logger is None:
            return
        for episodes in everyone:
            for step, returns, lengths in episodes:
                self.logger.episodes_finished(step, np.array(returns), np.array(lengths))
        self.logger.update_finished(global_step, stats, learning_rate, sps)

    @property
    def mean_recent_return(self) -> float:
        return self.logger.mean_recent_return if self.logger is not None else float("nan")

    def close(self, global_step: int, steps: int, seconds: float, extra: str = "") -> str:
        return self.logger.close(global_step, steps, seconds, extra) if self.logger is not None else ""

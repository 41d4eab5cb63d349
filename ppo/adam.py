"""Adam over all of an agent's parameters held in one flat tensor, with torch.optim.Adam's arithmetic and state_dict.

Why it exists (docs/performance.md has the A/B figures):
- Constructing any torch.optim optimizer imports torch._dynamo (torch.optim keeps its methods out of torch.compile
  that way), which takes about as long as a default ``python main.py`` run trains.
- The MLP's update is dozens of tiny tensors per minibatch step; as one flat tensor, Adam's step, the gradient
  clip (``clip_grad_norm_`` on the one tensor) and zeroing the gradient are a few ops each.
The agent's parameters become views of the flat tensor, each with its own shape and memory layout, and their
gradients views of one flat gradient, so the agent computes exactly as before. The step is the one torch's own
single-tensor Adam makes (``_single_tensor_adam`` in torch/optim/adam.py, without weight decay or amsgrad), element
for element, and ``state_dict`` is torch.optim.Adam's per-tensor format: checkpoints load into either.
test_adam.py holds all of that against torch.optim.Adam.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ALIGN = 16  # elements: each piece starts 64 bytes into the flat tensor, as a tensor of its own would


def padded_size(tensor: torch.Tensor, align: int) -> int:
    return -(-tensor.numel() // align) * align


def flat_views(flat: torch.Tensor, like: list[torch.Tensor], align: int = 1) -> list[torch.Tensor]:
    """Pieces of the 1-D ``flat``, each shaped and strided like its tensor in ``like``, each starting at a multiple
    of ``align`` elements. Aligned pieces compute as separate tensors do, to the bit (test_adam.py): kernels
    take other paths for unaligned memory."""
    views, offset = [], 0
    for tensor in like:
        views.append(flat[offset:offset + tensor.numel()].as_strided(tensor.shape, tensor.stride()))
        offset += padded_size(tensor, align)
    return views


class Adam:
    """``param_groups[0]["lr"]`` is read at every step (the loop anneals it); ``param_groups[0]["params"]`` is the
    one flat parameter, whose ``grad`` is the whole gradient (what ``clip_grad_norm_`` is given)."""

    def __init__(self, agent: nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.tensors = list(agent.parameters())
        flat = nn.Parameter(self.tensors[0].new_zeros(sum(padded_size(p, ALIGN) for p in self.tensors)))
        flat.grad = torch.zeros_like(flat)  # the padding between pieces stays zero: no gradient, no step
        with torch.no_grad():
            for parameter, data, grad in zip(self.tensors, flat_views(flat.data, self.tensors, ALIGN),
                                             flat_views(flat.grad, self.tensors, ALIGN), strict=True):
                data.copy_(parameter)
                parameter.data = data
                parameter.grad = grad  # backward accumulates into it in place: never set it to None
        self.param_groups = [{"params": [flat], "lr": lr, "betas": betas, "eps": eps}]
        self.flat = flat
        self.steps = 0
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        self.steps += 1
        grad = self.flat.grad
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-lr / (1 - beta1**self.steps))

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's state_dict for the agent's parameters, one state per tensor."""
        group = self.param_groups[0]
        state = {} if self.steps == 0 else {
            index: {"step": torch.tensor(float(self.steps)), "exp_avg": exp_avg.clone(),
                    "exp_avg_sq": exp_avg_sq.clone()}
            for index, (exp_avg, exp_avg_sq) in enumerate(zip(flat_views(self.exp_avg, self.tensors, ALIGN),
                                                               flat_views(self.exp_avg_sq, self.tensors, ALIGN),
                                                               strict=True))}
        return {"state": state, "param_groups": [{
            "lr": group["lr"], "betas": group["betas"], "eps": group["eps"], "weight_decay": 0.0, "amsgrad": False,
            "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
            "decoupled_weight_decay": False, "params": list(range(len(self.tensors)))}]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """torch.optim.Adam's state_dict over the agent's parameters, or over one flat tensor of them all (how
        checkpoints of 2026-12-03 and before hold it)."""
        (group,) = saved["param_groups"]
        states = [saved["state"].get(index) for index in group["params"]]
        if len(states) not in (1, len(self.tensors)):
            raise ValueError(f"the saved optimizer state has {len(states)} parameters, this agent "
                             f"{len(self.tensors)}")
        self.param_groups[0].update({key: group[key] for key in ("lr", "betas", "eps")})
        self.steps = 0 if states[0] is None else int(states[0]["step"])
        for key, flat in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
            flat.zero_()
            if states[0] is None:  # saved before the first step: no moments yet
                continue
            # Each parameter's piece: per tensor, or cut from the one unpadded flat tensor.
            pieces = [state[key] for state in states] if len(states) == len(self.tensors) else \
                flat_views(states[0][key], self.tensors)
            for view, piece in zip(flat_views(flat, self.tensors, ALIGN), pieces, strict=True):
                view.copy_(piece)

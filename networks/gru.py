"""A GRU with a faster backward pass on the CPU than nn.GRU's, for the update's replay.

PyTorch's CPU GRU records every step's gate operations for autograd and walks them back one by one, while its
LSTM has a fused kernel, so at the sizes of the NoVel rows a GRU's forward and backward cost several times an
LSTM's (docs/memory.md, Speed, has the figures). ``GRUSequence`` runs nn.GRU's own forward without recording, then
in backward recomputes all the gates at once from the outputs it saved (every step's previous hidden state is
known) and walks back through time with two multiplies and one matrix product a step, over the whole rollout at
once (nn.GRU needs one call per stretch without an episode start). The same function as nn.GRU, the same
parameters; ``tests/test_recurrent.py::test_the_gru_sequence_has_nn_grus_gradients`` holds its gradients to
nn.GRU's.

The GRU (PyTorch's convention, gates r, z, n in that order in the weights):
    r = σ(W_ir x + b_ir + W_hr h + b_hr)    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))    h' = (1 − z) ⊙ n + z ⊙ h
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class GRUSequence(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)  # --bf16: the recurrence in float32
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor,
                run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                *weights: torch.Tensor) -> torch.Tensor:
        """``x`` [T, B, F] from ``h0`` [1, B, H], each env's state zeroed where ``starts`` [T, B] says an episode
        begins -> outputs [T, B, H] (the last is the final state). ``run`` is nn.GRU over such a sequence
        (RecurrentActorCritic.recur_in_chunks), run here without recording."""
        with torch.no_grad():
            out, _ = run(x, h0, starts)
        ctx.save_for_backward(x, h0, starts, out, *weights)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out: torch.Tensor):
        x, h0, starts, out, w_ih, w_hh, b_ih, b_hh = ctx.saved_tensors
        steps, batch, inputs = x.shape
        size = h0.shape[-1]
        keep = 1.0 - starts.to(x.dtype)
        h_prev = torch.cat((h0, out[:-1])) * keep[:, :, None]  # the state each step read
        gi = torch.addmm(b_ih, x.reshape(-1, inputs), w_ih.t()).view(steps, batch, 3, size)
        gh = torch.addmm(b_hh, h_prev.reshape(-1, size), w_hh.t()).view(steps, batch, 3, size)
        r, z = torch.sigmoid(gi[:, :, :2] + gh[:, :, :2]).unbind(2)
        n = torch.tanh(gi[:, :, 2] + r * gh[:, :, 2])
        # dL/dh' times each of these gives: the pre-activations of r and z, W_hn h + b_hn, the pre-activation of
        # n, and the part of dL/dh that goes straight to h through z ⊙ h.
        to_n = (1 - z) * (1 - n * n)
        coefficients = torch.stack((to_n * gh[:, :, 2] * r * (1 - r), (h_prev - n) * z * (1 - z), to_n * r, to_n, z),
                                   dim=2)
        grads = torch.empty(steps, batch, 5, size, dtype=x.dtype, device=x.device)
        dh = torch.zeros(batch, size, dtype=x.dtype, device=x.device)
        for t in range(steps - 1, -1, -1):
            torch.mul((grad_out[t] + dh)[:, None], coefficients[t], out=grads[t])
            # the state step t read was the previous output times keep[t] (zero where an episode starts)
            dh = torch.addmm(grads[t, :, 4], grads[t, :, :3].reshape(batch, 3 * size), w_hh) * keep[t, :, None]
        d_gh = grads[:, :, :3].reshape(-1, 3 * size)
        d_gi = grads[:, :, [0, 1, 3]].reshape(-1, 3 * size)
        return ((d_gi @ w_ih).view(steps, batch, inputs), dh[None], None, None, d_gi.t() @ x.reshape(-1, inputs),
                d_gh.t() @ h_prev.reshape(-1, size), d_gi.sum(0), d_gh.sum(0))

"""A GRU over a whole rollout, forward and backward written out, for the update's replay on the CPU.

PyTorch's CPU GRU records every step's gate operations for autograd and walks them back one by one, while its
LSTM has a fused kernel, so at the sizes of the NoVel rows a GRU's forward and backward cost several times an
LSTM's (docs/memory.md, Speed, has the figures). ``GRUSequence`` takes the episode starts inside the rollout (the
state a step reads is the previous output times 0 or 1), so the whole rollout is one call, where nn.GRU needs one
per stretch without a start. Its forward spends one matrix product and four small ops a step, written in place,
and keeps the gates; its backward computes every step's local derivatives at once from them, then walks back
through time with one matrix product and one multiply-add a step. The same function as nn.GRU, the same
parameters; ``tests/test_recurrent.py::test_the_gru_sequence_has_nn_grus_gradients`` holds its outputs and
gradients to nn.GRU's.

The GRU (PyTorch's convention, gates r, z, n in that order in the weights):
    r = σ(W_ir x + b_ir + W_hr h + b_hr)    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))    h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
"""

from __future__ import annotations

import torch


class GRUSequence(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)  # --bf16: the recurrence in float32
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor, w_ih: torch.Tensor,
                w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        """``x`` [T, B, F] from ``h0`` [1, B, H], each env's state zeroed where ``starts`` [T, B] says an episode
        begins -> outputs [T, B, H] (the last is the final state)."""
        steps, batch, inputs = x.shape
        size = h0.shape[-1]
        keep = 1.0 - starts.to(x.dtype)
        gi = torch.addmm(b_ih, x.reshape(-1, inputs), w_ih.t()).view(steps, batch, 3, size)
        # Each step's one addmm adds W_hh h, in place, to the rest of r's and z's pre-activations and to b_hn: the
        # gates tensor then holds both pre-activations (r and z after the sigmoid, in place) and W_hn h + b_hn.
        b_hh = b_hh.view(3, size)
        gates = torch.cat((gi[:, :, :2] + b_hh[:2], b_hh[2:].expand(steps, batch, 1, size)), dim=2)
        n = gi[:, :, 2].clone()  # W_in x + b_in, to which each step adds r ⊙ (W_hn h + b_hn) in place
        out = torch.empty_like(n)
        restarts = set(torch.nonzero(starts.any(1)).flatten().tolist())
        w_hh_t, h = w_hh.t(), h0[0]
        # Every step's views made once (unbind): indexing a view costs about as much as a small op.
        for t, (gates_t, rz, r, z, gh_n, n_t, out_t) in enumerate(zip(
                gates.flatten(2).unbind(0), gates[:, :, :2].unbind(0), gates[:, :, 0].unbind(0),
                gates[:, :, 1].unbind(0), gates[:, :, 2].unbind(0), n.unbind(0), out.unbind(0), strict=True)):
            if t in restarts:
                h = h * keep[t, :, None]
            gates_t.addmm_(h, w_hh_t)
            rz.sigmoid_()
            n_t.addcmul_(r, gh_n).tanh_()
            h = torch.lerp(n_t, h, z, out=out_t)  # n + z ⊙ (h − n)
        ctx.save_for_backward(x, h0, keep, out, gates, n, w_ih, w_hh)
        ctx.restarts = restarts
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out: torch.Tensor):
        x, h0, keep, out, gates, n, w_ih, w_hh = ctx.saved_tensors
        steps, batch, inputs = x.shape
        size = h0.shape[-1]
        h_prev = torch.cat((h0, out[:-1])) * keep[:, :, None]  # the state each step read
        r, z, gh_n = gates.unbind(2)
        # dL/dh' times each of these gives: the pre-activations of r and z, W_hn h + b_hn, the pre-activation of
        # n, and the part of dL/dh that goes straight to h through z ⊙ h.
        to_n = (1 - z) * (1 - n * n)
        coefficients = torch.stack((to_n * gh_n * (r * (1 - r)), (h_prev - n) * z * (1 - z), to_n * r, to_n, z),
                                   dim=2)
        # dL/dh' of step t is grad_out[t] plus keep[t + 1] · dL/dh of step t + 1: each step's own part for all
        # steps at once, then the loop adds the part from the step after it.
        grads = grad_out[:, :, None] * coefficients
        rows, coefficient_rows = grads.unbind(0), coefficients.unbind(0)
        gh_rows, direct = grads[:, :, :3].flatten(2).unbind(0), grads[:, :, 4].unbind(0)  # [B, 3H] and [B, H]
        for t in range(steps - 1, -1, -1):
            dh = torch.addmm(direct[t], gh_rows[t], w_hh)  # dL/d(the state step t read)
            if t in ctx.restarts:
                dh = dh * keep[t, :, None]  # dL/d(the output of step t - 1), or of h0
            if t:
                rows[t - 1].addcmul_(dh[:, None], coefficient_rows[t - 1])
        d_gh = grads[:, :, :3].reshape(-1, 3 * size)
        d_gi = torch.cat((grads[:, :, :2], grads[:, :, 3:4]), dim=2).view(-1, 3 * size)
        return ((d_gi @ w_ih).view(steps, batch, inputs), dh[None], None,
                d_gi.t() @ x.reshape(-1, inputs), d_gh.t() @ h_prev.reshape(-1, size), d_gi.sum(0), d_gh.sum(0))

"""``backsolve``: the continuous adjoint of Chen et al., "Neural Ordinary Differential Equations"
(NeurIPS 2018), integrating [y, a, dL/dp] backwards from the last output time.

O(1) memory in the number of steps: nothing of the forward pass is kept but the outputs. The
state is re-integrated backwards, which is unstable on chaotic and stiff problems; the drift is
measured (``stats.recon_error``) and, unless ``options={"reanchor": True}``, not hidden.
"""

from __future__ import annotations

import torch

from odebench.gradients.adjoint_field import (
    add_jump,
    backward_norm,
    flat_cat,
    split_params,
    vjp,
)
from odebench.gradients.base import (
    BACKWARD_FAILURES,
    OdeCall,
    backward_failure,
    reconstruction_error,
    stack_outputs,
)
from odebench.solution import Stats
from odebench.solvers import FlatField, integrate, scheme

FIELD_NAME = "the backsolve adjoint's augmented field [y, dL/dy, dL/dp] (built from func's VJPs)"


def anchored_state(ys_flat: torch.Tensor, i: int, y_back: torch.Tensor,
                   reanchor: bool) -> torch.Tensor:
    """The state the adjoint continues from at output ``i``: the stored forward output
    ``ys_flat[i]`` with ``reanchor``, else the re-integrated ``y_back``."""
    return ys_flat[i] if reanchor else y_back


class _Backsolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: OdeCall, stats: Stats, y0: torch.Tensor, *params: torch.Tensor):
        f = call.field()
        with torch.no_grad():
            result = call.forward(f, y0.detach().reshape(-1), stats)
        stats.nfe = f.nfe
        ys = stack_outputs(call, result.ys)
        ctx.call, ctx.stats, ctx.h_last = call, stats, result.h_next
        ctx.versions = call.versions()
        ctx.save_for_backward(ys)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: torch.Tensor):
        call: OdeCall = ctx.call
        stats: Stats = ctx.stats
        call.check_backward(ctx.versions)
        (ys,) = ctx.saved_tensors
        params = call.params
        n = call.y0.numel()
        grad_flat = grad_ys.reshape(len(call.ts), -1)
        ys_flat = ys.reshape(len(call.ts), -1)

        guard = call.guard()

        def augmented(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            y, a = z[:n].view(call.shape), z[n: 2 * n].view(call.shape)
            fy, g_y, g_p = vjp(call.func, params, t, y, a, guard)
            return torch.cat([fy.reshape(-1), -g_y.reshape(-1), -flat_cat(g_p).to(z)])

        n_aug = 2 * n + sum(p.numel() for p in params)
        af = FlatField(augmented, torch.Size([n_aug]), call.y0.dtype, call.y0.device,
                       name=FIELD_NAME)
        sch = call.scheme
        if call.opts.adjoint_method is not None:
            sch = scheme(call.opts.adjoint_method, call.y0.dtype, call.y0.device)
        rtol, atol = call.adjoint_tolerances()
        norm_numel, parts = backward_norm(call.opts, (n, n), params)
        z = torch.cat([ys_flat[-1], grad_flat[-1], ys.new_zeros(n_aug - 2 * n)])
        h = ctx.h_last
        back = Stats()
        budget = call.backward_budget()
        times, adjoints = [call.ts[-1]], [z[n: 2 * n]]
        try:
            for i in range(len(call.ts) - 1, 0, -1):
                seg = integrate(sch, af, z, [call.ts[i], call.ts[i - 1]], back, call.opts,
                                rtol, atol, budget - back.n_steps - back.n_rejected,
                                first_step=h, norm_numel=norm_numel, norm_parts=parts)
                h = seg.h_next
                z = seg.ys[-1]
                y_part = anchored_state(ys_flat, i - 1, z[:n], call.opts.reanchor)
                z = torch.cat([y_part, add_jump(z[n: 2 * n], grad_flat[i - 1]), z[2 * n:]])
                times.append(call.ts[i - 1])
                adjoints.append(z[n: 2 * n])
        except BACKWARD_FAILURES as err:
            raise backward_failure(err, call, back, times, adjoints) from err
        finally:
            stats.record_backward(back, af.nfe)
        stats.recon_error = reconstruction_error(z[:n], ys_flat[0])
        grad_y0 = z[n: 2 * n].view(call.shape)
        grad_params = split_params(z[2 * n:], params)
        return (None, None, grad_y0, *grad_params)


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Forward without a graph; backward by the continuous adjoint. Returns ys [T, *shape]."""
    return _Backsolve.apply(call, stats, call.y0, *call.params)

"""``interpolated``: the continuous adjoint reading the state from the forward pass's dense
output, so the state is never integrated backwards (the "interpolated adjoint" of
SciMLSensitivity's InterpolatingAdjoint; Kim et al., "Stiff neural ODEs", 2021).

Memory O(steps x state x stages): no network activations are kept. ``options={"seminorm":
True}`` leaves dL/dp out of the backward solve's error norm, which then measures dL/dy alone
(Kidger, Chen & Lyons, ICML 2021).
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
from odebench.gradients.base import BACKWARD_FAILURES, OdeCall, backward_failure, stack_outputs
from odebench.gradients.trajectory import Trajectory
from odebench.solution import Stats
from odebench.solvers import FlatField, integrate, scheme
from odebench.solvers.loop import StepRecord

FIELD_NAME = ("the interpolated adjoint's augmented field [dL/dy, dL/dp] (built from func's "
              "VJPs)")


class _Interpolated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: OdeCall, stats: Stats, y0: torch.Tensor, *params: torch.Tensor):
        f = call.field()
        records: list[StepRecord] = []
        with torch.no_grad():
            result = call.forward(f, y0.detach().reshape(-1), stats, observer=records.append,
                                  dense_stages=True)
        stats.nfe = f.nfe
        ys = stack_outputs(call, result.ys)
        ctx.call, ctx.stats, ctx.records, ctx.h_last = call, stats, records, result.h_next
        ctx.versions = call.versions()
        ctx.save_for_backward(ys)
        stats.saved_bytes = sum(r.y.numel() * r.y.element_size()
                                + sum(k.numel() * k.element_size() for k in r.ks)
                                for r in records)
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
        f = call.field()
        f_end = None
        if not call.scheme.has_dense:
            with torch.no_grad():
                f_end = f(call.ts[-1], ys_flat[-1])
        traj = Trajectory(call.scheme, ctx.records, ys_flat[-1], f_end)
        guard = call.guard()

        def augmented(t_float: float, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            y = traj(t_float).view(call.shape)
            _, g_y, g_p = vjp(call.func, params, t, y, z[:n].view(call.shape), guard)
            return torch.cat([-g_y.reshape(-1), -flat_cat(g_p).to(z)])

        n_aug = n + sum(p.numel() for p in params)
        af = FlatField(augmented, torch.Size([n_aug]), call.y0.dtype, call.y0.device,
                       pass_float_time=True, name=FIELD_NAME)
        sch = call.scheme
        if call.opts.adjoint_method is not None:
            sch = scheme(call.opts.adjoint_method, call.y0.dtype, call.y0.device)
        rtol, atol = call.adjoint_tolerances()
        z = torch.cat([grad_flat[-1], ys.new_zeros(n_aug - n)])
        norm_numel, parts = backward_norm(call.opts, (n,), params)
        h = ctx.h_last
        back = Stats()
        budget = call.backward_budget()
        times, adjoints = [call.ts[-1]], [z[:n]]
        try:
            for i in range(len(call.ts) - 1, 0, -1):
                seg = integrate(sch, af, z, [call.ts[i], call.ts[i - 1]], back, call.opts,
                                rtol, atol, budget - back.n_steps - back.n_rejected,
                                first_step=h, norm_numel=norm_numel, norm_parts=parts)
                h = seg.h_next
                z = seg.ys[-1]
                z = torch.cat([add_jump(z[:n], grad_flat[i - 1]), z[n:]])
                times.append(call.ts[i - 1])
                adjoints.append(z[:n])
        except BACKWARD_FAILURES as err:
            raise backward_failure(err, call, back, times, adjoints) from err
        finally:
            stats.record_backward(back, af.nfe + f.nfe)
        return (None, None, z[:n].view(call.shape), *split_params(z[n:], params))


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Forward keeping the dense output; backward integrates only [a, dL/dp]."""
    return _Interpolated.apply(call, stats, call.y0, *call.params)

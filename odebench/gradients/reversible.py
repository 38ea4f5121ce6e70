"""``reversible``: backpropagation through the reversible Heun method
(:mod:`odebench.solvers.reversible_heun`) with the trajectory reconstructed backwards from the
final state, step by step, instead of stored (Kidger, Foster, Li & Lyons, NeurIPS 2021).

The gradient is that of the discrete solution, as ``backprop`` through the same solver, up to
the round-off of the reconstruction (measured: ``stats.recon_error`` = ``|y0_rec - y0| / |y0|``).
Memory is O(1) in the number of steps: the final ``(y, yhat, fhat)`` and, for an adaptive run,
the accepted steps' times (16 bytes a step; a fixed-step run recomputes them), counted in
``stats.saved_bytes``. Each backward step costs two evaluations of ``f`` (the reconstruction's,
reused by the step's recomputation under autograd, and the step's own).

It needs its own solver: ``method`` must be ``"reversible_heun"`` (checked in
:mod:`odebench.api`).
"""

from __future__ import annotations

import torch

from odebench.gradients import checkpointed
from odebench.gradients.adjoint_field import add_jump
from odebench.gradients.base import OdeCall, reconstruction_error, stack_outputs, tensor_bytes
from odebench.solution import Stats
from odebench.solvers import FlatField
from odebench.solvers.reversible_heun import HeunState, Step, fixed_plan, forward_step, run

STEP_BYTES = 16
"""Bytes a recorded adaptive step costs: its two times as float64."""


def reconstruct(f: FlatField, step: Step, s1: HeunState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state at ``step.t`` from ``s1`` at ``step.t1``, as leaves for autograd: ``(y, yhat,
    fhat)`` with ``fhat = f(t, yhat)`` recorded (so the recomputed step differentiates through
    it)."""
    h = step.h
    with torch.no_grad():
        yhat = torch.add(2.0 * s1.y - s1.yhat, s1.fhat, alpha=-h)
    yhat.requires_grad_(True)
    fhat = f(step.t, yhat)
    with torch.no_grad():
        y = torch.add(s1.y, fhat + s1.fhat, alpha=-0.5 * h)
    return y.requires_grad_(True), yhat, fhat


def step_vjp(call: OdeCall, f: FlatField, step: Step, s1: HeunState, a_y: torch.Tensor,
             a_yhat: torch.Tensor) -> tuple[HeunState, tuple[torch.Tensor | None, ...]]:
    """Reconstruct the state before ``step`` and backpropagate the cotangents ``(a_y, a_yhat)``
    of ``(y, yhat)`` after it through the recomputed step: returns the state before the step
    (detached) and the gradients w.r.t. ``(y, yhat, *call.params)`` before it."""
    with torch.enable_grad():
        y, yhat, fhat = reconstruct(f, step, s1)
        after = forward_step(f, step, HeunState(y, yhat, fhat))
        grads = torch.autograd.grad([after.y, after.yhat], [y, yhat, *call.params],
                                    [a_y, a_yhat], allow_unused=True)
    return HeunState(y.detach(), yhat.detach(), fhat.detach()), grads


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: OdeCall, stats: Stats, y0: torch.Tensor, *params: torch.Tensor):
        f = call.field()
        with torch.no_grad():
            result = run(f, y0.detach().reshape(-1), call.ts, stats, call.opts, call.rtol,
                         call.atol, call.opts.max_num_steps)
        stats.nfe = f.nfe
        recorded = call.opts.step_size is None
        ctx.call, ctx.stats, ctx.final = call, stats, result.final
        ctx.steps = result.steps if recorded else None
        stats.saved_bytes = (tensor_bytes(result.final.tensors())
                             + (STEP_BYTES * len(result.steps) if recorded else 0))
        return stack_outputs(call, result.ys)

    @staticmethod
    def backward(ctx, grad_ys: torch.Tensor):
        call: OdeCall = ctx.call
        stats: Stats = ctx.stats
        steps = ctx.steps if ctx.steps is not None else fixed_plan(call.ts, call.opts.step_size)
        grad_flat = grad_ys.reshape(len(call.ts), -1)
        f = call.field()
        s: HeunState = ctx.final
        a_y, a_yhat = torch.zeros_like(grad_flat[0]), torch.zeros_like(grad_flat[0])
        grad_params = [torch.zeros_like(p) for p in call.params]
        try:
            for step in reversed(steps):
                if step.out is not None:
                    a_y = add_jump(a_y, grad_flat[step.out])
                s, grads = step_vjp(call, f, step, s, a_y, a_yhat)
                a_y, a_yhat = (g if g is not None else torch.zeros_like(a_y) for g in grads[:2])
                checkpointed.accumulate(grad_params, grads[2:])
        finally:
            stats.nfe_backward = f.nfe
            stats.n_steps_backward = len(steps)
        stats.recon_error = reconstruction_error(s.y, call.y0.detach().reshape(-1))
        grad_y0 = (a_y + a_yhat + grad_flat[0]).view(call.shape)
        return (None, None, grad_y0, *grad_params)


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Forward by reversible Heun keeping only the final state; backward reconstructs and
    backpropagates step by step. Returns ys [T, *shape]."""
    return _Reversible.apply(call, stats, call.y0, *call.params)

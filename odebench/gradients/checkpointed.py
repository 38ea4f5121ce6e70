"""``checkpointed``: the forward pass keeps each accepted step's (t, h) and the state of every
k-th step; the backward pass recomputes the steps under autograd, one segment at a time, and
backpropagates through them (the adaptive checkpoint adjoint of Zhuang et al., ICML 2020).

The exact gradient of the discrete solution, as ``backprop``, with memory O(steps x state) plus
one segment's activations. ``options={"checkpoint_every": k}`` keeps every k-th state.
"""

from __future__ import annotations

import functools

import torch

from odebench.gradients.base import OdeCall, stack_outputs
from odebench.solution import Stats
from odebench.solvers import FlatField
from odebench.solvers.loop import StepRecord


def _replay(call: OdeCall, f: FlatField, records: list[StepRecord], y: torch.Tensor,
            outputs: dict[int, torch.Tensor]) -> torch.Tensor:
    """Recompute ``records``' steps from ``y`` under autograd; fills ``outputs`` by output index
    and returns the state after the last step. The last step serves no next one: work only the
    next step needs (an FSAL stage) is skipped unless its dense output uses it."""
    method = call.scheme.method
    state = method.init(f, records[0].t, y, Stats(), keeps_stages=True, jac=call.opts.jac)
    for i, r in enumerate(records):
        res = method.step(f, r.t, y, r.h, state, need_next=i + 1 < len(records) or bool(r.thetas))
        if r.thetas:
            method.prepare_dense(f, res.dense_info)
            for j, out in enumerate(method.dense(res.dense_info, r.thetas).unbind(0)):
                outputs[r.out_first + j] = out
        if r.exact:
            outputs[r.out_first + len(r.thetas)] = res.y1
        y, state = res.y1, res.state
    return y


def _replay_tensors(call: OdeCall, f: FlatField, records: list[StepRecord],
                    y: torch.Tensor) -> list[torch.Tensor]:
    """The tensors a segment's replay makes (its end state and outputs), for a re-check."""
    outputs: dict[int, torch.Tensor] = {}
    return [_replay(call, f, records, y, outputs), *outputs.values()]


def checkpoint_state(records: list[StepRecord], index: int) -> torch.Tensor:
    """The stored state at the start of step ``index`` (a checkpoint), detached."""
    return records[index].y.detach()


def output_cotangents(grad_flat: torch.Tensor, indices: list[int]) -> list[torch.Tensor]:
    """dL/dy at the output times recomputed in a segment (the adjoint's jumps)."""
    return [grad_flat[i] for i in indices]


def accumulate(total: list[torch.Tensor], grads: tuple[torch.Tensor | None, ...]) -> None:
    """Add one segment's parameter gradients to the running totals, in place."""
    for acc, g in zip(total, grads):
        if g is not None:
            acc.add_(g)


class _Checkpointed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: OdeCall, stats: Stats, y0: torch.Tensor, *params: torch.Tensor):
        f = call.field()
        every = call.opts.checkpoint_every
        records: list[StepRecord] = []

        def keep(r: StepRecord) -> None:
            r.ks = None
            if len(records) % every:
                r.y = None
            records.append(r)

        with torch.no_grad():
            result = call.forward(f, y0.detach().reshape(-1), stats, observer=keep)
        stats.nfe = f.nfe
        stats.saved_bytes = sum(r.y.numel() * r.y.element_size() for r in records
                                if r.y is not None)
        ys = stack_outputs(call, result.ys)
        ctx.call, ctx.stats, ctx.records = call, stats, records
        ctx.versions = call.versions()
        return ys

    @staticmethod
    def backward(ctx, grad_ys: torch.Tensor):
        call: OdeCall = ctx.call
        stats: Stats = ctx.stats
        call.check_backward(ctx.versions)
        records: list[StepRecord] = ctx.records
        params = call.params
        grad_flat = grad_ys.reshape(len(call.ts), -1)
        every = call.opts.checkpoint_every
        f = call.field()
        guard = call.guard()
        a = torch.zeros_like(grad_flat[0])
        grad_params = [torch.zeros_like(p) for p in params]
        starts = list(range(0, len(records), every))
        try:
            for s in reversed(starts):
                segment = records[s: s + every]
                with torch.enable_grad():
                    y_s = checkpoint_state(records, s).requires_grad_(True)
                    outputs: dict[int, torch.Tensor] = {}
                    y_e = _replay(call, f, segment, y_s, outputs)
                    tensors = [y_e, *outputs.values()]
                    guard.watch(tensors, [y_s], functools.partial(
                        _replay_tensors, call, f, segment, y_s))
                    grads_out = [a, *output_cotangents(grad_flat, list(outputs))]
                    grads = torch.autograd.grad(tensors, [y_s, *params], grads_out,
                                                allow_unused=True)
                a = grads[0] if grads[0] is not None else torch.zeros_like(a)
                accumulate(grad_params, grads[1:])
        finally:
            stats.nfe_backward = f.nfe
            stats.n_steps_backward = len(records)
        grad_y0 = (a + grad_flat[0]).view(call.shape)
        return (None, None, grad_y0, *grad_params)


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Forward keeping checkpoints; backward recomputes and backpropagates step by step."""
    return _Checkpointed.apply(call, stats, call.y0, *call.params)

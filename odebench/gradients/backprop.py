"""``backprop``: autograd straight through the solver's operations.

The exact gradient of the discrete solution; memory grows with the number of steps times the
activations of every vector-field evaluation. ``Stats.nfe_backward`` counts the evaluations the
backward pass traverses: a hook on each recorded evaluation's output fires only when autograd
computes the gradient of that output, so rejected step attempts and stages no output depends on
(the unused final FSAL stage) are not counted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.gradients.base import OdeCall, stack_outputs
from odebench.solution import Stats


class _TraversedCount:
    """``func`` whose recorded outputs count one in ``stats.nfe_backward`` when the backward
    pass reaches them (a tensor hook fires once, with the output's accumulated gradient)."""

    def __init__(self, func: Callable[..., torch.Tensor], stats: Stats):
        self.func = func
        self.stats = stats

    def __call__(self, *args: object) -> torch.Tensor:
        out = self.func(*args)
        if isinstance(out, torch.Tensor) and out.requires_grad and torch.is_grad_enabled():
            out.register_hook(self._count)
        return out

    def _count(self, grad: torch.Tensor) -> None:
        self.stats.nfe_backward += 1


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Integrate with autograd recording every operation; returns ys [T, *shape]."""
    f = call.field()
    f.func = _TraversedCount(f.func, stats)
    result = call.forward(f, call.y0.reshape(-1), stats)
    stats.nfe = f.nfe
    ys = stack_outputs(call, result.ys)
    if ys.requires_grad:

        def start_count(grad: torch.Tensor) -> torch.Tensor:
            stats.nfe_backward = 0  # each backward pass counts afresh
            return grad

        ys.register_hook(start_count)
    return ys

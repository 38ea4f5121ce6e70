"""``backprop``: autograd straight through the solver's operations.

The exact gradient of the discrete solution; memory grows with the number of steps times the
activations of every vector-field evaluation.
"""

from __future__ import annotations

import torch

from odebench.gradients.base import OdeCall, stack_outputs
from odebench.solution import Stats


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Integrate with autograd recording every operation; returns ys [T, *shape]."""
    f = call.field()
    result = call.forward(f, call.y0.reshape(-1), stats)
    stats.nfe = f.nfe
    ys = stack_outputs(call, result.ys)
    if ys.requires_grad:
        nfe = f.nfe_recorded

        def count_backward(grad: torch.Tensor) -> torch.Tensor:
            stats.nfe_backward = nfe
            return grad

        ys.register_hook(count_backward)
    return ys

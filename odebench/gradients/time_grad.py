"""Gradients with respect to the output times ``t``, for every gradient method.

The solvers see the output times as Python floats, so no gradient method differentiates them.
The derivative of the exact flow with respect to the times is known in closed form (Chen et al.,
"Neural Ordinary Differential Equations", NeurIPS 2018, Appendix B):

* ``dL/dt_i = g_i . f(t_i, y_i)`` for each output ``i >= 1`` (``g_i = dL/dy(t_i)``);
* ``dL/dt_0 = -a(t_0) . f(t_0, y_0)``, with ``a(t_0)`` the adjoint of ``y0`` carried back from
  the outputs ``i >= 1`` (output 0 is ``y0`` itself and does not move with ``t_0``).

Both are added by zero-valued correction terms whose derivatives are exactly these: the solve
starts from ``y0 - (t_0 - sg(t_0)) sg(f(t_0, y0))`` (``sg``: stop-gradient) and output ``i >= 1`` is
``y_i + (t_i - sg(t_i)) sg(f(t_i, y_i))``; output 0 is the caller's ``y0``. Whatever gradient
method runs the solve supplies ``a(t_0)``; values are unchanged bit for bit (the corrections are
exact zeros). The derivative is that of the exact solution, so it matches the discrete solution's
finite differences to the solver's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.solution import Stats
from odebench.solvers import FlatField

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def wants_time_gradient(t: torch.Tensor) -> bool:
    """Whether ``t`` is to be differentiated: it requires grad and autograd records."""
    return t.requires_grad and torch.is_grad_enabled()


def solve_with_time_gradient(func: Func, y0: torch.Tensor, t: torch.Tensor,
                             run: Callable[[torch.Tensor], torch.Tensor],
                             stats: Stats) -> torch.Tensor:
    """Run ``run(y0_start) -> ys`` [T, *y0.shape] (a solve from ``y0_start`` at the output times
    ``t``) so that the result is differentiable with respect to every entry of ``t``.

    Adds ``T`` evaluations of ``func`` (without a graph) to ``stats.nfe``: ``f(t_0, y0)`` and
    ``f(t_i, y_i)`` for ``i >= 1``. ``t`` may have another floating dtype (or device) than
    ``y0``; its gradient comes back in its own.
    """
    f = FlatField(func, y0.shape, y0.dtype, y0.device)
    with torch.no_grad():
        f0 = f(float(t[0]), y0.detach().reshape(-1)).view(y0.shape)
    shift0 = (t[0] - t[0].detach()).to(device=y0.device, dtype=y0.dtype)
    ys = run(y0 - shift0 * f0)
    times = t.tolist()
    with torch.no_grad():
        fs = torch.stack([f(times[i], ys[i].detach().reshape(-1)) for i in range(1, len(times))])
    stats.nfe += f.nfe
    shifts = (t[1:] - t[1:].detach()).to(device=y0.device, dtype=y0.dtype)
    shifts = shifts.view(-1, *([1] * y0.ndim))
    return torch.cat([y0.unsqueeze(0), ys[1:] + shifts * fs.view(ys[1:].shape)])

"""The augmented vector fields of the continuous adjoint, one vector-Jacobian product per call."""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.solvers.func import CapturedGuard


def vjp(func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], params: list[torch.Tensor],
        t: torch.Tensor, y: torch.Tensor, a: torch.Tensor, guard: CapturedGuard | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Evaluate ``f(t, y)`` and the products ``a^T df/dy`` and ``a^T df/dp`` in one backward pass.

    Shapes: ``y`` and ``a`` as the state; returns (f [state], a^T df/dy [state], [a^T df/dp_i]).
    Parameters that ``f`` does not use get zeros. ``guard`` refuses tensors requiring grad
    that ``f`` reaches besides ``params`` (they would get no gradient), at every evaluation.
    """
    with torch.enable_grad():
        y_ = y.detach().requires_grad_(True)
        fy = func(t, y_)
        if guard is not None:
            guard.watch([fy], [y_, t], lambda: [func(t, y_)])
        grads = torch.autograd.grad(fy, [y_, *params], grad_outputs=a, allow_unused=True)
    g_y = grads[0] if grads[0] is not None else torch.zeros_like(y)
    g_p = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads[1:], params)]
    return fy.detach(), g_y, g_p


def flat_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors flattened, shape [sum of numels]."""
    if not tensors:
        return torch.zeros(0)
    return torch.cat([t.reshape(-1) for t in tensors])


def split_params(flat: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Inverse of :func:`flat_cat` for tensors shaped like ``params``."""
    out, offset = [], 0
    for p in params:
        out.append(flat[offset: offset + p.numel()].view_as(p))
        offset += p.numel()
    return out


def add_jump(a: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """The adjoint's jump at an output time: ``a(t_i^-) = a(t_i^+) + dL/dy(t_i)``."""
    return a + grad_output

"""The augmented vector fields of the continuous adjoint, one vector-Jacobian product per call."""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.solvers.func import CapturedGuard
from odebench.solvers.options import SolverOptions


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


def backward_norm(opts: SolverOptions, lead: tuple[int, ...], params: list[torch.Tensor]
                  ) -> tuple[int | None, tuple[int, ...] | None]:
    """``(norm_numel, norm_parts)`` of an adjoint's backward system ``[*lead, dL/dp]`` (lead:
    the lengths of its state parts, [y, a] for backsolve, [a] for interpolated; then the
    parameter adjoints, one part per tensor of ``params``), for :func:`odebench.solvers.integrate`.

    ``opts.seminorm`` leaves the dL/dp entries out of the error norm (Kidger, Chen & Lyons,
    "Hey, that's not an ODE", ICML 2021): only the ``sum(lead)`` leading entries count.
    ``opts.adjoint_norm == "per_part"`` takes the max of the parts' RMS norms, one part per
    state part and per parameter tensor, as torchdiffeq's adjoint does (its ``_mixed_norm``
    over the tuple of tensors); "mixed" one RMS norm over every entry measured. Empty
    parameter tensors are no part."""
    tail = () if opts.seminorm else tuple(p.numel() for p in params if p.numel())
    numel = sum(lead) if opts.seminorm else None
    parts = (*lead, *tail)
    return numel, parts if opts.adjoint_norm == "per_part" and len(parts) > 1 else None

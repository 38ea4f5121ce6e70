"""A discretised reaction-diffusion PDE: the 2-D Brusselator on an N x N periodic grid.

As in SciMLBenchmarks.jl, benchmarks/AutomaticDifferentiation/BrussScaling.jmd (the scaling
benchmark of Ma et al., HPEC 2021, arXiv 1812.01892), from the ``brusselator_2d_loop`` of
SciML's tutorials::

    u_t = B + u^2 v - (A + 1) u + alpha / dx^2 Lap u,     v_t = A u - u^2 v + alpha / dx^2 Lap v

on [0, 1]^2 with ``dx = 1 / (N - 1)``, the 5-point Laplacian with periodic wrap-around,
``p = (A, B, alpha) = (3.4, 1, 10)``, ``u0 = 22 (y (1 - y))^{3/2}``, ``v0 = 27 (x (1 - x))^{3/2}``.
The source's forcing (5 in a disc from t = 1.1 on) is zero before t = 1.1, so ``T`` must stay
below 1.1. The state is ``[2, N, N]`` (u, v); the Laplacian's eigenvalues reach
``-8 alpha (N - 1)^2``, so for N >= 8 the problem is stiff for explicit methods.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from odebench.errors import InvalidInputError
from odebench.problems.base import Problem, as_f64, linspace_times

FORCING_START = 1.1


def _laplacian(w: Tensor) -> Tensor:
    """5-point periodic Laplacian (without the 1/dx^2) over the last two axes."""
    return (torch.roll(w, 1, -1) + torch.roll(w, -1, -1) + torch.roll(w, 1, -2)
            + torch.roll(w, -1, -2) - 4.0 * w)


def _rhs(dx: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
        a, b, alpha = p[0], p[1], p[2] / dx**2
        u, v = y[..., 0, :, :], y[..., 1, :, :]
        uuv = u * u * v
        du = alpha * _laplacian(u) + b + uuv - (a + 1.0) * u
        dv = alpha * _laplacian(v) + a * u - uuv
        return torch.stack([du, dv], dim=-3)

    return rhs


def brusselator_2d(N: int = 8, T: float = 0.01, n_points: int = 3) -> Problem:
    """The 2-D Brusselator on an N x N grid (state ``[2, N, N]``, 2 N^2 entries), up to ``T``."""
    if not (isinstance(N, int) and N >= 2):
        raise InvalidInputError(f"N must be an integer >= 2, got {N!r}")
    if not 0 < T < FORCING_START:
        raise InvalidInputError(f"T must be in (0, {FORCING_START}) (the forcing starts at "
                                f"t = {FORCING_START}), got {T!r}")
    xyd = torch.linspace(0.0, 1.0, N, dtype=torch.float64)
    x, y = torch.meshgrid(xyd, xyd, indexing="ij")
    u0 = 22.0 * (y * (1.0 - y)) ** 1.5
    v0 = 27.0 * (x * (1.0 - x)) ** 1.5
    dx = 1.0 / (N - 1)
    return Problem(
        name="brusselator_2d",
        rhs=_rhs(dx),
        y0=torch.stack([u0, v0]),
        p=as_f64([3.4, 1.0, 10.0]),
        t_eval=linspace_times(T, n_points),
        stiff=N >= 8,
        description=(f"2-D Brusselator, {N} x {N} periodic grid (state 2 x {N} x {N}), "
                     "p = (A, B, alpha) = (3.4, 1, 10), as in SciMLBenchmarks' BrussScaling "
                     "(Ma et al., HPEC 2021, arXiv 1812.01892)."),
        atol=1e-8,
    )


FACTORIES: dict[str, Callable[..., Problem]] = {"brusselator_2d": brusselator_2d}

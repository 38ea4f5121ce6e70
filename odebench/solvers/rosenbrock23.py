"""Rosenbrock23: the modified Rosenbrock triple of MATLAB's ode23s and SciML's Rosenbrock23, as
one :class:`~odebench.solvers.method.Method` class (its stages do not fit the Rodas tableau form:
the third stage is evaluated at the new solution and serves the error estimate and, FSAL, the
next step).

Shampine & Reichelt, "The MATLAB ODE Suite", SIAM J. Sci. Comput. 18(1):1-22, 1997, Sec. 4.1,
with ``d = 1 / (2 + sqrt 2)``, ``e32 = 6 + sqrt 2``, ``W = I - h d J``, ``T = df/dt``:

    k1 = W^-1 (f(t, y) + h d T)
    F1 = f(t + h/2, y + h/2 k1),         k2 = W^-1 (F1 - k1) + k1,      y1 = y + h k2
    F2 = f(t + h, y1),                   k3 = W^-1 (F2 - e32 (k2 - F1) - 2 (k1 - f(t, y)) + h d T)
    error = h/6 (k1 - 2 k2 + k3),        y(t + theta h) = y + h (theta (1 - theta) k1
                                                          + theta (theta - 2 d) k2) / (1 - 2 d)

Second order (L-stable, a W-method), error estimate of third order; the PI exponents use
``error_order = 2`` as ode23s's 1/3. The stages are slopes (error scale |h|). The Jacobian is
evaluated once per step point and reused by rejected attempts, as for the Rodas methods
(:class:`~odebench.solvers.rosenbrock.Jacobian`; ``stats.n_jac``, ``stats.n_lu``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from odebench.solvers.func import FlatField
from odebench.solvers.method import StepResult
from odebench.solvers.rosenbrock import LinearlyImplicit, RosenbrockState

D = 1.0 / (2.0 + math.sqrt(2.0))
E32 = 6.0 + math.sqrt(2.0)


@dataclass(slots=True)
class R23Info:
    """One step's data: start state ``y`` [N], signed ``h``, the slopes ``ks = [k1, k2, k3]``
    (k3 None when the step was taken with ``need_next=False``) and ``f0 = f(t, y)``."""

    y: torch.Tensor
    h: float
    ks: list[torch.Tensor]
    f0: torch.Tensor


class Rosenbrock23(LinearlyImplicit):
    """The ode23s triple (module docstring) as a :class:`~odebench.solvers.method.Method`."""

    name = "rosenbrock23"
    order = 2
    error_order = 2

    def step(self, f: FlatField, t: float, y: torch.Tensor, h: float, state: RosenbrockState,
             need_next: bool = True) -> StepResult:
        f0, (dfdy, dfdt) = self.at_point(f, t, y, h, state)
        lu, pivots, _ = torch.linalg.lu_factor_ex(state.eye - (h * D) * dfdy)
        state.stats.n_lu += 1

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            return torch.linalg.lu_solve(lu, pivots, rhs.unsqueeze(1)).squeeze(1)

        hdt = None if dfdt is None else (h * D) * dfdt
        k1 = solve(f0 if hdt is None else f0 + hdt)
        f1 = f(t + 0.5 * h, torch.add(y, k1, alpha=0.5 * h))
        k2 = solve(f1 - k1) + k1
        y1 = torch.add(y, k2, alpha=h)
        if not need_next:
            return StepResult(y1=y1, dense_info=R23Info(y, h, [k1, k2], f0), state=None)
        f2 = f(t + h, y1)
        rhs = f2 - E32 * (k2 - f1) - 2.0 * (k1 - f0)
        k3 = solve(rhs if hdt is None else rhs + hdt)
        return StepResult(y1=y1, dense_info=R23Info(y, h, [k1, k2, k3], f0),
                          state=self.next_state(state, f2))

    def error(self, info: R23Info, n: int) -> tuple[torch.Tensor, float]:
        """``(k1 - 2 k2 + k3) / 6`` in the first ``n`` entries, and |h|."""
        k1, k2, k3 = (k[:n] for k in info.ks)
        return (k1 - 2.0 * k2 + k3).div_(6.0), abs(info.h)

    def dense(self, info: R23Info, thetas: list[float]) -> torch.Tensor:
        th = torch.as_tensor(thetas, dtype=info.y.dtype, device=info.y.device).unsqueeze(1)
        w1 = th * (1 - th) / (1 - 2 * D)
        w2 = th * (th - 2 * D) / (1 - 2 * D)
        return info.y + info.h * (w1 * info.ks[0] + w2 * info.ks[1])

"""Continuous adjoint in float64: a backward SciPy solve of ``[a, g]`` on the forward dense output.

``a = dL/dy`` obeys ``a' = -J_y^T a`` and ``g' = -J_p^T a`` backwards from ``a(t_N) = dL/dy_N``,
``g(t_N) = 0``; at each earlier output time ``a`` jumps by ``dL/dy_i``. Then ``dL/dy0 = a(t_0)``
and ``dL/dp = g(t_0)``. Vector-Jacobian products come from ``torch.autograd``.
The state is read from the forward dense output: DOP853's is of order 7, Radau's is its stage
polynomial (order 3), so for stiff problems the forward-sensitivity path is the accurate one.
"""

from __future__ import annotations

import numpy as np

from odebench.problems.base import Problem
from odebench.reference.bridge import TorchSystem
from odebench.reference.integrate import integrate
from odebench.reference.settings import Settings
from odebench.reference.solve import run_forward


def adjoint_atol(
    atol: float, dl_dys: np.ndarray, ys: np.ndarray, p: np.ndarray
) -> np.ndarray:
    """Absolute tolerances ``[n + m]`` of ``[a, g]``.

    Chosen so that the error each allows in ``L`` is ``max|dL/dy| * atol``, i.e. what a state
    error of ``atol`` would cause: ``atol * max|G| / max|y|`` for ``a`` and
    ``atol * max|G| / |p_j|`` for ``g_j``.
    """
    g_scale = float(np.max(np.abs(dl_dys)))
    y_scale = float(np.max(np.abs(ys))) or 1.0
    p_scale = np.where(p != 0.0, np.abs(p), 1.0)
    a_tol = np.full(ys.shape[-1], atol * g_scale / y_scale)
    return np.concatenate([a_tol, atol * g_scale / p_scale])


def adjoint_gradient(
    problem: Problem, settings: Settings, dl_dys: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(dL/dy0 [n], dL/dp [m], nfev)`` from ``dL/dys`` ``[T, n]`` by the continuous adjoint."""
    system = TorchSystem(problem)
    n, m = system.n, system.m
    if not np.any(dl_dys):
        return np.zeros(n), np.zeros(m), 0
    ts = problem.t_eval.numpy()
    forward = run_forward(problem, settings, dense=True)
    atol = adjoint_atol(settings.atol, dl_dys, forward.ys, problem.p.numpy())
    nfev = forward.nfev
    a, g = dl_dys[-1].copy(), np.zeros(m)
    for i in range(len(ts) - 1, 0, -1):
        state = forward.dense[i - 1]

        def fun(t: float, z: np.ndarray, state=state) -> np.ndarray:
            a_j, a_jp = system.vjp(t, state(t), z[:n])
            return -np.concatenate([a_j, a_jp])

        def jac(t: float, z: np.ndarray, state=state) -> np.ndarray:
            _, j_y, j_p = system.f_and_jacobians(t, state(t))
            out = np.zeros((n + m, n + m))
            out[:n, :n] = -j_y.T
            out[n:, :n] = -j_p.T
            return out

        piece = integrate(
            fun, np.array([ts[i], ts[i - 1]]), np.concatenate([a, g]), settings, jac=jac, atol=atol
        )
        nfev += piece.nfev
        a, g = piece.ys[-1, :n] + dl_dys[i - 1], piece.ys[-1, n:]
    return a, g, nfev

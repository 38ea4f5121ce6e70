"""Forward sensitivities: integrate ``y``, ``S_y0 = dy/dy0`` and ``S_p = dy/dp`` together.

``S' = J_y S + [0 | J_p]`` with ``S(t0) = [I | 0]``; Jacobians from ``torch.func.jacrev``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from odebench.problems.base import Problem
from odebench.reference.bridge import TorchSystem
from odebench.reference.integrate import Trajectory, integrate
from odebench.reference.settings import Settings

# Above this size the Newton matrix of the augmented system is passed to SciPy as sparse.
DENSE_NEWTON_LIMIT = 400


def sensitivity_atol(atol: float, y0: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-column absolute tolerances ``[n + m]`` of ``S``.

    dy/dy0 columns get ``atol / max|y0|``; dy/dp_j columns get ``atol / |p_j|`` (the scaling
    by parameter magnitude that CVODES uses for sensitivities, CVODES user guide, "pbar").
    """
    y_scale = float(np.max(np.abs(y0))) if np.any(y0) else 1.0
    p_scale = np.where(p != 0.0, np.abs(p), 1.0)
    return np.concatenate([np.full(y0.size, atol / y_scale), atol / p_scale])


def forward_sensitivities(
    problem: Problem, settings: Settings
) -> tuple[np.ndarray, np.ndarray, Trajectory]:
    """``(ys [T, n], S [T, n + m, n], trajectory)`` at the output times of the float64 problem.

    ``S[i, j]`` is ``dy(t_i)/dy0_j`` for ``j < n`` and ``dy(t_i)/dp_{j-n}`` after (the
    transpose of the usual ``S``, so each column is contiguous). For implicit methods the
    Newton matrix drops the ``d(S')/dy`` coupling, i.e. ``blockdiag(J_y, ..., J_y)``, the
    simultaneous-corrector approximation of CVODES; it affects convergence, not accuracy.
    """
    system = TorchSystem(problem)
    n, m = system.n, system.m
    k = n + m

    def fun(t: float, z: np.ndarray) -> np.ndarray:
        f, j_y, j_p = system.f_and_jacobians(t, z[:n])
        s_dot = z[n:].reshape(k, n) @ j_y.T
        s_dot[n:] += j_p.T
        return np.concatenate([f, s_dot.reshape(-1)])

    def jac(t: float, z: np.ndarray) -> np.ndarray | scipy.sparse.csc_matrix:
        j_y = system.jac(t, z[:n])
        if (k + 1) * n <= DENSE_NEWTON_LIMIT:
            return np.kron(np.eye(k + 1), j_y)
        return scipy.sparse.kron(scipy.sparse.identity(k + 1), j_y, format="csc")

    y0 = problem.y0.reshape(-1).numpy()
    p = problem.p.numpy()
    s0 = np.zeros((k, n))
    s0[:n] = np.eye(n)
    z0 = np.concatenate([y0, s0.reshape(-1)])
    atol = np.concatenate([np.full(n, settings.atol), np.repeat(sensitivity_atol(settings.atol, y0, p), n)])
    trajectory = integrate(fun, problem.t_eval.numpy(), z0, settings, jac=jac, atol=atol)
    ys = trajectory.ys[:, :n]
    sens = trajectory.ys[:, n:].reshape(len(trajectory.ts), k, n)
    return ys, sens, trajectory


def forward_gradient(
    problem: Problem, settings: Settings, dl_dys: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(dL/dy0 [n], dL/dp [m], nfev)`` from ``dL/dys`` ``[T, n]`` by forward sensitivities."""
    _, sens, trajectory = forward_sensitivities(problem, settings)
    n = problem.y0.numel()
    total = np.einsum("tkn,tn->k", sens, dl_dys)
    return total[:n], total[n:], trajectory.nfev

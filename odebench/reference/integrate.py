"""Piecewise SciPy integration that lands exactly on every output time.

The integration restarts at each output time, so values there are step end points, not
dense-output interpolants (Radau's interpolant is only the stage polynomial).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from odebench.errors import NonFiniteError, StepSizeUnderflowError
from odebench.reference.settings import Settings

VectorField = Callable[[float, np.ndarray], np.ndarray]


@dataclass
class Trajectory:
    """``ys``: ``[len(ts), n]`` at the output times; ``dense[i]`` interpolates ``[ts[i], ts[i+1]]``."""

    ts: np.ndarray
    ys: np.ndarray
    nfev: int = 0
    njev: int = 0
    dense: list = field(default_factory=list)


def integrate(
    fun: VectorField,
    ts: np.ndarray,
    z0: np.ndarray,
    settings: Settings,
    *,
    jac: Callable | None = None,
    atol: np.ndarray | float | None = None,
    dense: bool = False,
) -> Trajectory:
    """Integrate ``z' = fun(t, z)`` through the times ``ts`` (monotone, ``z(ts[0]) = z0``).

    ``atol`` overrides ``settings.atol`` (a per-component array is allowed); ``jac`` is passed
    to implicit methods only. Raises ``StepSizeUnderflowError`` when SciPy gives up and
    ``NonFiniteError`` when the state stops being finite.
    """
    tol = settings.atol if atol is None else atol
    options = {"jac": jac} if (settings.implicit and jac is not None) else {}
    out = np.empty((len(ts), z0.size))
    out[0] = z0
    trajectory = Trajectory(ts=np.asarray(ts, dtype=np.float64), ys=out)
    z = np.asarray(z0, dtype=np.float64)
    for i in range(len(ts) - 1):
        sol = solve_ivp(
            fun,
            (float(ts[i]), float(ts[i + 1])),
            z,
            method=settings.method,
            rtol=settings.rtol,
            atol=tol,
            dense_output=dense,
            **options,
        )
        trajectory.nfev += int(sol.nfev)
        trajectory.njev += int(sol.njev)
        if sol.status != 0:
            raise StepSizeUnderflowError(
                f"{settings.method} failed at t={sol.t[-1]!r} on [{ts[i]!r}, {ts[i + 1]!r}]: "
                f"{sol.message}"
            )
        z = sol.y[:, -1]
        if not np.all(np.isfinite(z)):
            raise NonFiniteError(f"{settings.method} produced a non-finite state at t={ts[i + 1]!r}")
        out[i + 1] = z
        if dense:
            trajectory.dense.append(sol.sol)
    return trajectory

"""Records returned by :mod:`odebench.reference`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ReferenceSolution:
    """Float64 truth at the output times.

    ``ts``: ``[len(t_eval)]``; ``ys``: ``[len(t_eval), *y0.shape]``, both numpy float64.
    ``method``/``rtol``/``atol``: the SciPy settings used; ``nfev``/``njev``: right-hand side and
    Jacobian evaluations; ``wall_s``: seconds the computation took (when it was computed, also
    for a result read back from the cache).
    """

    ts: np.ndarray
    ys: np.ndarray
    method: str
    rtol: float
    atol: float
    nfev: int
    njev: int
    wall_s: float


@dataclass
class ReferenceGradient:
    """Float64 gradient of a scalar loss of the trajectory.

    ``loss``: the loss at the reference solution; ``dy0``: dL/dy0, shape ``y0.shape``;
    ``dp``: dL/dp, shape ``p.shape`` (numpy float64). ``method``: ``"forward"`` (forward
    sensitivities) or ``"adjoint"`` (continuous adjoint), with the SciPy method, e.g.
    ``"forward/DOP853"``. ``wall_s``: seconds the sensitivity computation took.
    """

    loss: float
    dy0: np.ndarray
    dp: np.ndarray
    method: str
    wall_s: float

"""The forward solution kept as a continuous function of time, for the ``interpolated`` adjoint."""

from __future__ import annotations

import bisect

import torch

from odebench.solvers import Scheme
from odebench.solvers.loop import StepRecord


class Trajectory:
    """Piecewise interpolant over accepted steps: each method's own continuous extension, or a
    cubic Hermite interpolant (from the states and derivatives at both ends) for methods without
    one. ``__call__(t)`` returns the flat state at ``t`` (shape [N])."""

    def __init__(self, sch: Scheme, records: list[StepRecord], y_end: torch.Tensor,
                 f_end: torch.Tensor):
        self.sch = sch
        self.records = records
        self.y_end, self.f_end = y_end, f_end
        self.sign = 1.0 if records[0].h > 0 else -1.0
        self.keys = [self.sign * r.t for r in records]

    def step_index(self, t: float) -> int:
        """Index of the step that contains ``t``."""
        i = bisect.bisect_right(self.keys, self.sign * t) - 1
        return min(max(i, 0), len(self.records) - 1)

    def __call__(self, t: float) -> torch.Tensor:
        i = self.step_index(t)
        r = self.records[i]
        theta = (t - r.t) / r.h
        method = self.sch.method
        if method.has_dense:
            return method.dense(r.dense_info, [theta])[0]
        if i + 1 < len(self.records):
            nxt = self.records[i + 1]
            y1, f1 = nxt.y, method.start_slope(nxt.dense_info)
        else:
            y1, f1 = self.y_end, self.f_end
        return hermite(r.y, y1, method.start_slope(r.dense_info), f1, r.h, theta)

    def nbytes(self) -> int:
        """Bytes kept: states and stages of every step."""
        total = 0
        for r in self.records:
            total += r.y.numel() * r.y.element_size()
            total += sum(k.numel() * k.element_size() for k in r.ks)
        return total


def hermite(y0: torch.Tensor, y1: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, h: float,
            theta: float) -> torch.Tensor:
    """Cubic Hermite interpolation on one step (Hairer, Norsett, Wanner I, II.6, eq. 6.7)."""
    h00 = (1 + 2 * theta) * (1 - theta) ** 2
    h10 = theta * (1 - theta) ** 2
    h01 = theta**2 * (3 - 2 * theta)
    h11 = theta**2 * (theta - 1)
    return h00 * y0 + h01 * y1 + h * (h10 * f0 + h11 * f1)

"""Cost at equal accuracy: the wall time and NFE a backend/method needs to reach a stated error,
interpolated log-log on its work-precision curve.

A curve is the points of one line (e.g. one backend/method on one problem) ordered by
tightening tolerance. The cost at a target error is interpolated linearly in
(log error, log cost) between the first two consecutive points whose errors bracket the
target. A curve whose errors all lie above the target has not reached it; one whose
loosest point is already below the target says only that the cost is at most that point's:
both give no number, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TARGETS", "AtTarget", "cost_at"]

#: Relative errors at which costs are compared.
TARGETS = (1e-4, 1e-6, 1e-8)


@dataclass(frozen=True)
class AtTarget:
    """The interpolated cost at a target error, or ``None`` with ``reason`` saying why not."""

    cost: float | None
    reason: str = ""


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def cost_at(costs: Sequence[float], errors: Sequence[float], target: float) -> AtTarget:
    """The cost at which the curve ``(costs[i], errors[i])`` (ordered by tightening tolerance)
    reaches the error ``target``, by log-log interpolation between the bracketing points.

    Points with a non-positive or non-finite cost or error are skipped.
    """
    points = [(c, e) for c, e in zip(costs, errors, strict=True) if _positive(c) and _positive(e)]
    if not points:
        return AtTarget(None, "no plottable point")
    if points[0][1] <= target:
        return AtTarget(None, f"below the target at the loosest tolerance (cost <= {points[0][0]:.3g})")
    for (c0, e0), (c1, e1) in zip(points, points[1:], strict=False):
        if e0 >= target >= e1:
            if e0 == e1:
                return AtTarget(c0)
            fraction = (math.log(target) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return AtTarget(math.exp(math.log(c0) + fraction * (math.log(c1) - math.log(c0))))
    return AtTarget(None, f"not reached (smallest error {min(e for _, e in points):.3g})")

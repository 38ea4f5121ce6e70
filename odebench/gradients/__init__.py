"""Gradient methods, one module each, one interface: ``solve(call, stats) -> ys``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.errors import InvalidInputError
from odebench.gradients import (
    backprop,
    backsolve,
    checkpointed,
    forward,
    interpolated,
    reversible,
)
from odebench.gradients.base import OdeCall
from odebench.solution import Stats
from odebench.solvers.registry import REVERSIBLE_METHODS

GRADIENTS: dict[str, Callable[[OdeCall, Stats], torch.Tensor]] = {
    "backprop": backprop.solve,
    "backsolve": backsolve.solve,
    "interpolated": interpolated.solve,
    "checkpointed": checkpointed.solve,
    "forward": forward.solve,
    "reversible": reversible.solve,
}

OWN_SOLVER: dict[str, str] = {"reversible": "reversible_heun"}
"""Gradient methods that differentiate their own solver -> the method a solve with them names."""
STEP_RECORDS = ("checkpointed", "interpolated")
"""Gradient methods that replay the forward method's stages or dense output (which the
reversible methods do not keep)."""


def method_for(gradient: str, method: str) -> str:
    """The method a run of ``gradient`` uses when ``method`` is asked for: its own solver for the
    gradients of ``OWN_SOLVER``, else ``method`` (for grids that iterate over gradients)."""
    return OWN_SOLVER.get(gradient, method)


def check_combination(gradient: str, method: str) -> None:
    """Raise InvalidInputError when ``gradient`` cannot differentiate a solve by ``method``."""
    own = OWN_SOLVER.get(gradient)
    if own is not None and method != own:
        raise InvalidInputError(
            f"gradient='{gradient}' backpropagates through its own solver: pass "
            f"method='{own}' (got method='{method}')")
    if method in REVERSIBLE_METHODS and gradient in STEP_RECORDS:
        raise InvalidInputError(
            f"gradient='{gradient}' replays stages or dense output that method='{method}' does "
            f"not keep; with method='{method}' use gradient='reversible', 'backprop', "
            f"'backsolve' or 'forward'")

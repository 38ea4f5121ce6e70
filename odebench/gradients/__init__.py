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
from odebench.solvers.options import SolverOptions
from odebench.solvers.registry import FIXED_METHODS, REVERSIBLE_METHODS

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
AUGMENTED_BACKWARD = ("backsolve", "interpolated")
"""Gradient methods with an adaptive backward solve of an augmented system ([y, a, dL/dp] and
[a, dL/dp]), whose error norm ``options["seminorm"]`` and ``options["adjoint_norm"]`` set."""


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


def ignored_norm_options(gradient: str, method: str, opts: SolverOptions) -> list[str]:
    """Why each backward error-norm option set in ``opts`` (``seminorm``, ``adjoint_norm`` =
    "per_part") has no effect on a solve by ``method`` with ``gradient``: one message per
    ignored option, none when every one set takes effect (the caller warns with them)."""
    asked = [name for name, on in (("seminorm", opts.seminorm),
                                   ("adjoint_norm", opts.adjoint_norm != "mixed")) if on]
    if not asked:
        return []
    backward = opts.adjoint_method or method
    if gradient not in AUGMENTED_BACKWARD:
        why = (f"gradient='{gradient}' has no adaptive backward solve of an augmented system "
               f"(only {' and '.join(repr(g) for g in AUGMENTED_BACKWARD)} have one)")
    elif opts.step_size is not None or backward in FIXED_METHODS:
        why = f"the backward solve of gradient='{gradient}' takes fixed steps (no error control)"
    elif "adjoint_norm" in asked and backward in REVERSIBLE_METHODS:
        asked, why = ["adjoint_norm"], (f"method '{backward}' measures its error by one RMS "
                                        "norm, not by parts")
    elif "adjoint_norm" in asked and opts.seminorm and gradient == "interpolated":
        asked, why = ["adjoint_norm"], ("with the seminorm, interpolated's backward error norm "
                                        "measures dL/dy alone: one part")
    else:
        return []
    return [f"options['{name}']={getattr(opts, name)!r} has no effect: {why}" for name in asked]

"""odebench: accuracy, speed and memory of ways to solve and differentiate neural ODEs.

Public API: :func:`odeint`, :func:`solve`, :func:`odeint_adjoint`, :func:`odeint_event`,
:class:`Solution`, :class:`Stats`, the method and gradient names, and the error types.
"""

from odebench.compat import odeint, odeint_adjoint, solve
from odebench.errors import (
    EventNotFoundError,
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    OdeBenchError,
    StepSizeUnderflowError,
)
from odebench.events import odeint_event
from odebench.gradients import GRADIENTS as _GRADIENTS
from odebench.solution import PartialSolution, Solution, Stats
from odebench.solvers.registry import METHODS, STIFF_METHODS

__version__ = "0.1.0"

GRADIENTS: tuple[str, ...] = tuple(_GRADIENTS)

__all__ = [
    "GRADIENTS",
    "EventNotFoundError",
    "METHODS",
    "STIFF_METHODS",
    "InvalidInputError",
    "MaxStepsExceededError",
    "NonFiniteError",
    "OdeBenchError",
    "PartialSolution",
    "Solution",
    "Stats",
    "StepSizeUnderflowError",
    "odeint",
    "odeint_adjoint",
    "odeint_event",
    "solve",
]

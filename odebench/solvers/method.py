"""The protocol every method implements, so that one loop (:func:`odebench.solvers.loop.integrate`)
runs them all: explicit Runge-Kutta tableaus (:class:`~odebench.solvers.explicit.ExplicitRK`) and
linearly implicit Rosenbrock tableaus (:class:`~odebench.solvers.rosenbrock.Rosenbrock`).

A method knows how to take one step and how to interpolate inside it; it does not know about
acceptance, output times, budgets or norms (the loop's business). Its ``state`` is whatever it
carries from one step to the next (an FSAL stage, a Jacobian and its factorisation): ``init``
makes it at the first point, ``step`` returns the state to continue with after the step *if it is
accepted*; after a rejection the loop retries from the state it passed in (which the method may
have filled with work that holds for the point, such as the Jacobian there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from odebench.solution import Stats
from odebench.solvers.func import FlatField


@dataclass(slots=True)
class StepResult:
    """One attempted step.

    Attributes:
        y1: the flat state at ``t + h``, shape [N].
        dense_info: what :meth:`Method.dense` and :meth:`Method.error` read (the stages).
        state: the state to continue from ``(t + h, y1)`` if the step is accepted.
    """

    y1: torch.Tensor
    dense_info: Any
    state: Any


class Method(Protocol):
    """One-step method interface (in the spirit of diffrax's ``AbstractSolver`` and torchode's
    ``SingleStepMethod``)."""

    name: str
    order: int
    error_order: int
    adaptive: bool
    has_dense: bool
    implicit: bool

    def init(self, f: FlatField, t0: float, y0: torch.Tensor, stats: Stats,
             keeps_stages: bool, jac: Callable | None = None) -> Any:
        """The state at the first point ``(t0, y0)``; ``keeps_stages``: an observer keeps the
        steps' ``dense_info`` (it must outlive the step); ``jac``: the user's df/dy
        (``options={"jac": ...}``; implicit methods only)."""
        ...

    def slope(self, state: Any) -> torch.Tensor:
        """``f(t, y)`` at the state's point, flat [N] (the initial-step heuristic reads it)."""
        ...

    def step(self, f: FlatField, t: float, y: torch.Tensor, h: float, state: Any,
             need_next: bool = True) -> StepResult:
        """One step of signed size ``h`` from ``(t, y)``. ``need_next=False``: nothing continues
        from the returned state (the method may skip work that serves only the next step)."""
        ...

    def error(self, info: Any, n: int) -> tuple[torch.Tensor, float | None]:
        """The embedded error estimate of the step in the first ``n`` entries (those the norm
        measures), shape [n], and the factor it is to be multiplied by (|h| for explicit stages,
        which are slopes; None for Rosenbrock stages, which are increments). A method with two
        estimates (DOP853) gives them as the columns of [n, 2]. The loop calls it without
        autograd; the result may be overwritten."""
        ...

    def prepare_dense(self, f: FlatField, info: Any) -> None:
        """Evaluate what :meth:`dense` still needs (extra stages), once per step."""
        ...

    def dense(self, info: Any, thetas: list[float]) -> torch.Tensor:
        """States at ``t + theta h`` for each theta, shape [m, N]."""
        ...

    def start_slope(self, info: Any) -> torch.Tensor:
        """``f(t, y)`` at the start of the step of ``info`` (cubic Hermite interpolation of
        methods without a dense output)."""
        ...

"""Solvers: tableaus as data, one explicit Runge-Kutta loop, one Rosenbrock loop for stiff
problems, step control, dense output."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from odebench.solution import Stats
from odebench.solvers import loop
from odebench.solvers.control import Adaptive, Controller, FixedStep
from odebench.solvers.explicit import CompiledTableau, ExplicitRK
from odebench.solvers.func import FlatField
from odebench.solvers.loop import Integration, Observer
from odebench.solvers.method import Method, StepResult
from odebench.solvers.norm import ErrorNorm
from odebench.solvers.options import SolverOptions
from odebench.solvers.registry import (
    ADAPTIVE_METHODS,
    EXPLICIT_METHODS,
    FIXED_METHODS,
    METHODS,
    REVERSIBLE_METHODS,
    STIFF_METHODS,
)
from odebench.solvers.reversible_heun import ReversibleHeun, integrate_reversible_heun
from odebench.solvers.rosenbrock import CompiledRosenbrock, Rosenbrock
from odebench.solvers.rosenbrock23 import Rosenbrock23
from odebench.solvers.rosenbrock_tableaus import ROSENBROCK_TABLEAUS
from odebench.solvers.tableaus import TABLEAUS

METHOD_CLASSES: dict[str, type] = {"rosenbrock23": Rosenbrock23}
"""Methods implemented as one Method class each (name -> class), besides the tableaus."""


@dataclass
class Scheme:
    """A method ready to run on one dtype/device: its compiled coefficients and the
    :class:`~odebench.solvers.method.Method` that steps with them."""

    name: str
    compiled: CompiledTableau | CompiledRosenbrock | ReversibleHeun | None
    method: Method | None  # None for the reversible Heun method, which has a loop of its own

    @property
    def reversible(self) -> bool:
        """True for the algebraically reversible methods of ``REVERSIBLE_METHODS``."""
        return isinstance(self.compiled, ReversibleHeun)

    @property
    def implicit(self) -> bool:
        """True for the linearly implicit (Rosenbrock) methods of ``STIFF_METHODS``."""
        return not self.reversible and self.method.implicit

    @property
    def adaptive(self) -> bool:
        """Whether the method has an error estimate (reversible Heun: its first-order one)."""
        return self.reversible or self.method.adaptive

    @property
    def has_dense(self) -> bool:
        return not self.reversible and self.method.has_dense


@functools.lru_cache(maxsize=64)
def scheme(method: str, dtype: torch.dtype, device: torch.device) -> Scheme:
    """Compile ``method`` for a dtype and device (cached: the coefficient tensors are constants,
    never written, so solves share them). Methods that are a class rather than a tableau
    (``METHOD_CLASSES``) have no compiled coefficients."""
    if method in REVERSIBLE_METHODS:
        return Scheme(name=method, compiled=ReversibleHeun(), method=None)
    if method in METHOD_CLASSES:
        return Scheme(name=method, compiled=None, method=METHOD_CLASSES[method]())
    if method in ROSENBROCK_TABLEAUS:
        cr = CompiledRosenbrock(ROSENBROCK_TABLEAUS[method], dtype, device)
        return Scheme(name=method, compiled=cr, method=Rosenbrock(cr))
    ct = CompiledTableau(TABLEAUS[method], dtype, device)
    return Scheme(name=method, compiled=ct, method=ExplicitRK(ct))


def controller_for(sch: Scheme, opts: SolverOptions, norm: ErrorNorm,
                   first_step: float | None = None) -> Controller:
    """Fixed steps when the method has no error estimate or ``opts.step_size`` is set, else
    adaptive (``first_step`` overrides ``opts.first_step``)."""
    if not sch.adaptive or opts.step_size is not None:
        return FixedStep(opts.step_size)
    return Adaptive(norm, opts.max_step,
                    first_step if first_step is not None else opts.first_step)


def integrate(sch: Scheme, f: FlatField, y0: torch.Tensor, ts: list[float], stats: Stats,
              opts: SolverOptions, rtol: float, atol: float, max_steps: int,
              first_step: float | None = None, norm_numel: int | None = None,
              observer: Observer | None = None, dense_stages: bool = False,
              norm_parts: tuple[int, ...] | None = None,
              jac: Callable | None = None) -> Integration:
    """Integrate the flat field ``f`` from ``y0`` through the output times ``ts`` with the one
    loop (:func:`odebench.solvers.loop.integrate`).

    Fixed stepping when the method has no error estimate or ``opts.step_size`` is set; otherwise
    adaptive stepping with the method's embedded error estimate, measured on the first
    ``norm_numel`` entries (all by default), split into consecutive parts of lengths
    ``norm_parts`` when given (max of the per-part RMS norms). ``jac``: the user's df/dy
    (implicit methods; callers pass ``opts.jac`` for the user's own field only). The
    reversible Heun method has its own loop (no observer: it keeps no stages).
    """
    if sch.reversible:
        return integrate_reversible_heun(f, y0, ts, stats, opts, rtol, atol, max_steps,
                                         first_step=(first_step if first_step is not None
                                                     else opts.first_step),
                                         norm_numel=norm_numel)
    norm = ErrorNorm(rtol, atol, norm_numel if norm_numel is not None else y0.numel(),
                     norm_parts)
    return loop.integrate(sch.method, f, y0, ts, controller_for(sch, opts, norm, first_step),
                          norm, max_steps, stats, observer=observer, dense_stages=dense_stages,
                          jac=jac)


__all__ = ["ADAPTIVE_METHODS", "EXPLICIT_METHODS", "FIXED_METHODS", "METHODS", "REVERSIBLE_METHODS",
           "STIFF_METHODS",
           "ErrorNorm", "FlatField", "Integration", "Method", "Scheme", "SolverOptions",
           "StepResult", "integrate", "scheme"]

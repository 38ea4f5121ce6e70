"""Solvers: tableaus as data, one explicit Runge-Kutta loop, one Rosenbrock loop for stiff
problems, step control, dense output."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from odebench.solution import Stats
from odebench.solvers.explicit import CompiledTableau, integrate_adaptive, integrate_fixed
from odebench.solvers.func import FlatField
from odebench.solvers.loop import Integration, Observer
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
from odebench.solvers.rosenbrock import CompiledRosenbrock, integrate_rosenbrock
from odebench.solvers.rosenbrock_tableaus import ROSENBROCK_TABLEAUS
from odebench.solvers.tableaus import TABLEAUS


@dataclass
class Scheme:
    """A method ready to run on one dtype/device: what :func:`integrate` dispatches on."""

    name: str
    compiled: CompiledTableau | CompiledRosenbrock | ReversibleHeun

    @property
    def reversible(self) -> bool:
        """True for the algebraically reversible methods of ``REVERSIBLE_METHODS``."""
        return isinstance(self.compiled, ReversibleHeun)

    @property
    def implicit(self) -> bool:
        """True for the linearly implicit (Rosenbrock) methods of ``STIFF_METHODS``."""
        return isinstance(self.compiled, CompiledRosenbrock)

    @property
    def adaptive(self) -> bool:
        """Whether the method has an error estimate (reversible Heun: its first-order one)."""
        return self.reversible or self.compiled.tab.adaptive

    @property
    def has_dense(self) -> bool:
        return not self.reversible and self.compiled.tab.dense is not None


@functools.lru_cache(maxsize=64)
def scheme(method: str, dtype: torch.dtype, device: torch.device) -> Scheme:
    """Compile ``method`` for a dtype and device (cached: the coefficient tensors are constants,
    never written, so solves share them)."""
    if method in REVERSIBLE_METHODS:
        return Scheme(name=method, compiled=ReversibleHeun())
    if method in ROSENBROCK_TABLEAUS:
        return Scheme(name=method,
                      compiled=CompiledRosenbrock(ROSENBROCK_TABLEAUS[method], dtype, device))
    return Scheme(name=method, compiled=CompiledTableau(TABLEAUS[method], dtype, device))


def integrate(sch: Scheme, f: FlatField, y0: torch.Tensor, ts: list[float], stats: Stats,
              opts: SolverOptions, rtol: float, atol: float, max_steps: int,
              first_step: float | None = None, norm_numel: int | None = None,
              observer: Observer | None = None, dense_stages: bool = False) -> Integration:
    """Integrate the flat field ``f`` from ``y0`` through the output times ``ts``.

    Fixed stepping when the method has no error estimate or ``opts.step_size`` is set;
    otherwise adaptive stepping with the method's embedded error estimate. Implicit methods go
    to the Rosenbrock loop (``dense_stages`` does not apply: its dense output needs no extra
    stages). The reversible Heun method has its own loop (no observer: it keeps no stages).
    """
    if sch.reversible:
        return integrate_reversible_heun(f, y0, ts, stats, opts, rtol, atol, max_steps,
                                         first_step=(first_step if first_step is not None
                                                     else opts.first_step),
                                         norm_numel=norm_numel)
    if sch.implicit:
        return integrate_rosenbrock(f, sch.compiled, y0, ts, rtol, atol, stats, opts, max_steps,
                                    first_step=(first_step if first_step is not None
                                                else opts.first_step),
                                    norm_numel=norm_numel, observer=observer)
    if not sch.adaptive or opts.step_size is not None:
        return integrate_fixed(f, sch.compiled, y0, ts, opts.step_size, stats, max_steps,
                               observer)
    return integrate_adaptive(f, sch.compiled, y0, ts, rtol, atol, stats, opts, max_steps,
                              first_step=first_step if first_step is not None else opts.first_step,
                              norm_numel=norm_numel, observer=observer, dense_stages=dense_stages)


__all__ = ["ADAPTIVE_METHODS", "EXPLICIT_METHODS", "FIXED_METHODS", "METHODS", "REVERSIBLE_METHODS",
           "STIFF_METHODS",
           "FlatField", "Integration",
           "Scheme", "SolverOptions", "integrate", "scheme"]

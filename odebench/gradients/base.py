"""What every gradient method receives: one validated ODE call."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    OdeBenchError,
    StepSizeUnderflowError,
)
from odebench.solution import PartialSolution, Stats
from odebench.solvers import FlatField, Integration, Scheme, SolverOptions, integrate
from odebench.solvers.func import CapturedGuard
from odebench.solvers.loop import Observer


@dataclass
class OdeCall:
    """A validated solve request.

    Attributes:
        func: the user's vector field ``func(t, y) -> dy/dt``.
        y0: initial state, shape ``shape``.
        ts: output times as Python floats (strictly monotone), length T.
        scheme: the compiled method.
        rtol, atol: forward tolerances.
        opts: parsed options.
        params: tensors the gradient is taken with respect to (besides y0).
        gradient: the gradient method's name; for all but "backprop" the first evaluation of
            :meth:`field` refuses tensors requiring grad that ``func`` reaches besides params.
        t_dtype: dtype of the caller's ``t`` (partial solutions report times in it).
    """

    func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    y0: torch.Tensor
    ts: list[float]
    scheme: Scheme
    rtol: float
    atol: float
    opts: SolverOptions
    params: list[torch.Tensor]
    gradient: str = "backprop"
    t_dtype: torch.dtype = torch.float64

    @property
    def shape(self) -> torch.Size:
        return self.y0.shape

    def field(self) -> FlatField:
        """The user's func as a flat, counted field."""
        guard = self.params if self.gradient != "backprop" else None
        return FlatField(self.func, self.y0.shape, self.y0.dtype, self.y0.device,
                         known_params=guard, gradient=self.gradient)

    def guard(self) -> CapturedGuard | None:
        """The captured-tensor check of the backward pass (None for backprop)."""
        return CapturedGuard(self.params, self.gradient) if self.gradient != "backprop" else None

    def forward(self, f: FlatField, y0: torch.Tensor, stats: Stats,
                observer: Observer | None = None, dense_stages: bool = False) -> Integration:
        """The forward integration of ``f`` from the flat ``y0`` through all output times. The
        loop starts from a copy: neither ``func`` nor the records kept for the backward pass
        ever hold the caller's tensor."""
        return integrate(self.scheme, f, y0.clone(), self.ts, stats, self.opts, self.rtol,
                         self.atol, self.opts.max_num_steps, observer=observer,
                         dense_stages=dense_stages, jac=self.opts.jac)

    def versions(self) -> list[int]:
        """Version counters of ``y0`` and the parameters, recorded by an adjoint's forward."""
        return [t._version for t in (self.y0, *self.params)]

    def check_backward(self, versions: list[int]) -> None:
        """What an adjoint's backward checks first: no double backward (its backward pass is
        not differentiable), and ``y0`` and the parameters unmodified since the forward pass
        (their values then are what the gradient is taken at)."""
        if torch.is_grad_enabled():
            raise InvalidInputError(
                f"gradient='{self.gradient}' does not support double backward (create_graph=True "
                "or higher derivatives): its backward pass is not differentiable; use "
                "gradient='backprop'")
        names = ["y0", *(f"params[{i}] (shape {tuple(p.shape)})"
                         for i, p in enumerate(self.params))]
        for name, before, now in zip(names, versions, self.versions()):
            if now != before:
                raise InvalidInputError(
                    f"{name} was modified in place between the forward solve and backward() "
                    f"(version {before} -> {now}); gradient='{self.gradient}' would take the "
                    "gradient at values the solve did not use. Solve again after modifying it.")

    def adjoint_tolerances(self) -> tuple[float, float]:
        """(rtol, atol) of a backward solve."""
        return (self.opts.adjoint_rtol or self.rtol, self.opts.adjoint_atol or self.atol)

    def backward_budget(self) -> int:
        return self.opts.max_num_steps_backward or self.opts.max_num_steps


BACKWARD_FAILURES = (MaxStepsExceededError, StepSizeUnderflowError, NonFiniteError)


def backward_failure(err: OdeBenchError, call: OdeCall, back: Stats, times: list[float],
                     adjoints: list[torch.Tensor]) -> OdeBenchError:
    """The typed error of a failed backward (adjoint) solve, said as such: its message names
    the gradient method and, for the step budget, ``max_num_steps_backward``; its ``partial``
    holds the adjoint ``dL/dy`` [m, *y0.shape] at the output ``times`` the backward solve
    passed (from the last output time back), in t's dtype, and ``t_reached`` / ``h_last`` of the
    adjoint (see :class:`odebench.solution.PartialSolution`)."""
    inner = getattr(err, "partial", None)
    t_reached = inner.t_reached if inner is not None else times[-1]
    h_last = inner.h_last if inner is not None else float("nan")
    partial = PartialSolution(ts=torch.tensor(times, dtype=call.t_dtype),
                              ys=torch.stack(adjoints).view(len(adjoints), *call.shape),
                              stats=back, t_reached=t_reached, h_last=h_last)
    where = f"the backward (adjoint) solve of gradient='{call.gradient}'"
    if isinstance(err, MaxStepsExceededError):
        message = (f"max_num_steps_backward={call.backward_budget()} exceeded in {where} at "
                   f"t={t_reached:.10g} (last step size {h_last:.3g}); raise "
                   "options['max_num_steps_backward'] (default: max_num_steps) or loosen "
                   "options['adjoint_rtol'] / ['adjoint_atol']")
    else:
        message = f"in {where}: {err}"
    return type(err)(message, partial=partial)


def stack_outputs(call: OdeCall, ys: list[torch.Tensor]) -> torch.Tensor:
    """Flat outputs -> tensor [T, *shape]."""
    return torch.stack(ys).view(len(ys), *call.shape)


def tensor_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes held by distinct storages among ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def reconstruction_error(y_rec: torch.Tensor, y0: torch.Tensor) -> float:
    """``|y_rec - y0| / |y0|`` (relative L2; absolute when ``y0 = 0``) of a state reconstructed
    backwards to the initial time; inf when non-finite."""
    denom = float(torch.linalg.vector_norm(y0))
    diff = float(torch.linalg.vector_norm(y_rec - y0))
    error = diff / denom if denom > 0 else diff
    return error if math.isfinite(error) else math.inf

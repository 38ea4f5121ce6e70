"""What every gradient method receives: one validated ODE call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from odebench.solution import Stats
from odebench.solvers import FlatField, Integration, Scheme, SolverOptions, integrate
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

    @property
    def shape(self) -> torch.Size:
        return self.y0.shape

    def field(self) -> FlatField:
        """The user's func as a flat, counted field."""
        guard = self.params if self.gradient != "backprop" else None
        return FlatField(self.func, self.y0.shape, self.y0.dtype, self.y0.device,
                         known_params=guard, gradient=self.gradient)

    def forward(self, f: FlatField, y0: torch.Tensor, stats: Stats,
                observer: Observer | None = None, dense_stages: bool = False) -> Integration:
        """The forward integration of ``f`` from the flat ``y0`` through all output times."""
        return integrate(self.scheme, f, y0, self.ts, stats, self.opts, self.rtol, self.atol,
                         self.opts.max_num_steps, observer=observer, dense_stages=dense_stages,
                         jac=self.opts.jac)

    def adjoint_tolerances(self) -> tuple[float, float]:
        """(rtol, atol) of a backward solve."""
        return (self.opts.adjoint_rtol or self.rtol, self.opts.adjoint_atol or self.atol)

    def backward_budget(self) -> int:
        return self.opts.max_num_steps_backward or self.opts.max_num_steps


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

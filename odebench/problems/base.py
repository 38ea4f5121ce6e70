"""The ``Problem`` record: an initial value problem with its parameters and known values.

Every tensor of a problem is float64 on the CPU unless converted with :meth:`Problem.to`.
Time is in the problem's own (dimensionless or published) units.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Rhs = Callable[[Tensor, Tensor, Tensor], Tensor]
ClosedForm = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass
class Reference:
    """Known values ``y`` (shape ``y0.shape``, float64) at time ``t``, and where they come from."""

    t: float
    y: Tensor
    source: str


@dataclass
class Problem:
    """An initial value problem ``y' = rhs(t, y, p)``, ``y(t_eval[0]) = y0``.

    ``rhs(t, y, p)``: ``t`` a 0-d tensor, ``y`` of shape ``y0.shape``, ``p`` 1-D; returns dy/dt
    with the shape of ``y``. It is built from torch ops only, so it works under torch.func.
    ``closed_form(t_eval, y0, p)`` where known returns ``[len(t_eval), *y0.shape]``, differentiably.
    ``atol`` is the absolute tolerance scale of the problem (the size below which a component
    is noise). ``reference`` stays float64 through :meth:`to`; it is the truth, not a state.
    """

    name: str
    rhs: Rhs
    y0: Tensor
    p: Tensor
    t_eval: Tensor
    stiff: bool = False
    chaotic: bool = False
    reference: Reference | None = None
    description: str = ""
    atol: float = 1e-12
    closed_form: ClosedForm | None = None

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Problem:
        """A copy with ``y0``, ``p`` and ``t_eval`` converted (as ``Tensor.to``: a tensor that
        already matches is shared); the reference stays float64 and moves device only."""
        reference = self.reference
        if reference is not None and device is not None:
            reference = dataclasses.replace(reference, y=reference.y.to(device=device))
        return dataclasses.replace(
            self,
            y0=self.y0.to(dtype=dtype, device=device),
            p=self.p.to(dtype=dtype, device=device),
            t_eval=self.t_eval.to(dtype=dtype, device=device),
            reference=reference,
        )

    def func(self) -> torch.nn.Module:
        """A module ``f(t, y) = rhs(t, y, p)`` holding a copy of ``p`` as its one parameter."""
        return ProblemFunc(self.rhs, self.p)

    def loss_weights(self) -> Tensor:
        """Fixed weights ``w`` of shape ``y0.shape``: magnitudes in [0.5, 1.5], random signs.

        Seeded by a SHA-256 of the name, so they are identical across runs, machines and dtypes.
        """
        seed = int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "little")
        gen = torch.Generator().manual_seed(seed)
        shape = tuple(self.y0.shape)
        magnitude = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
        sign = 2.0 * torch.randint(0, 2, shape, generator=gen).to(torch.float64) - 1.0
        return (sign * magnitude).to(dtype=self.y0.dtype, device=self.y0.device)

    def loss(self, ys: Tensor) -> Tensor:
        """Default loss ``L = sum_i sum(w * y(t_i))`` of ``ys`` shaped ``[len(t_eval), *y0.shape]``."""
        return (ys * self.loss_weights().to(dtype=ys.dtype, device=ys.device)).sum()


class ProblemFunc(torch.nn.Module):
    """``forward(t, y) = rhs(t, y, p)`` with ``p`` an ``nn.Parameter`` (a detached copy)."""

    def __init__(self, rhs: Rhs, p: Tensor):
        super().__init__()
        self.rhs = rhs
        self.p = torch.nn.Parameter(p.detach().clone())

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.rhs(t, y, self.p)


def linspace_times(t_end: float, n_points: int = 11) -> Tensor:
    """``n_points`` equally spaced float64 output times on ``[0, t_end]``."""
    return torch.linspace(0.0, t_end, n_points, dtype=torch.float64)


def as_f64(values: list[float] | tuple[float, ...]) -> Tensor:
    """A 1-D float64 CPU tensor of ``values``."""
    return torch.tensor(values, dtype=torch.float64)

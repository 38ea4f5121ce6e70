"""The vector field as the solver loop sees it: flat state in, flat derivative out, calls counted."""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.errors import InvalidInputError, NonFiniteError


class FlatField:
    """Wrap ``func(t, y) -> dy/dt`` (y of shape ``shape``) as ``f(t: float, y_flat) -> dy_flat``.

    Counts evaluations in ``nfe`` (and in ``nfe_recorded`` those made while autograd records, which
    a backward pass through the solver differentiates once each). The first evaluation checks the
    returned shape, dtype and finiteness, so that a wrong vector field fails with a clear message,
    not deep inside a step.
    With ``pass_float_time`` the function is called as ``func(t_float, t_tensor, y)`` (internal
    fields that need the time as a Python number without a device synchronisation).
    """

    def __init__(self, func: Callable[..., torch.Tensor],
                 shape: torch.Size, dtype: torch.dtype, device: torch.device,
                 pass_float_time: bool = False):
        self.func = func
        self.pass_float_time = pass_float_time
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.nfe = 0
        self.nfe_recorded = 0
        self._checked = False

    def time(self, t: float) -> torch.Tensor:
        """A 0-d tensor holding ``t`` in the state's dtype and device."""
        return torch.full((), t, dtype=self.dtype, device=self.device)

    def __call__(self, t: float, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        if torch.is_grad_enabled():
            self.nfe_recorded += 1
        if self.pass_float_time:
            out = self.func(t, self.time(t), y.view(self.shape))
        else:
            out = self.func(self.time(t), y.view(self.shape))
        if not self._checked:
            self._check(t, out)
        return out.reshape(-1)

    def _check(self, t: float, out: object) -> None:
        if not isinstance(out, torch.Tensor):
            raise InvalidInputError(f"func must return a Tensor, got {type(out).__name__}")
        if out.shape != self.shape:
            raise InvalidInputError(
                f"func returned shape {tuple(out.shape)} but the state y0 has shape "
                f"{tuple(self.shape)}"
            )
        if out.dtype != self.dtype:
            raise InvalidInputError(
                f"func returned dtype {out.dtype} but the state y0 has dtype {self.dtype}"
            )
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteError(f"func returned non-finite values at t={t:.6g} (first evaluation)")
        self._checked = True

"""torchdiffeq's call surface: tuple states and ``odeint_adjoint``.

* A state may be a tuple of tensors (``y0 = (a, b)``, ``func(t, (a, b)) -> (da, db)``), as
  torchdiffeq accepts: the parts are flattened into one state for the solve and the outputs
  split back into a tuple of tensors [len(t), *part.shape]. The parts must share dtype and device.
* ``odeint_adjoint(func, y0, t, ...)`` is ``odeint(..., gradient="backsolve")`` (torchdiffeq's
  adjoint is the backsolve adjoint), with torchdiffeq's keywords mapped onto the options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from odebench import api
from odebench.errors import InvalidInputError
from odebench.solution import Solution

State = torch.Tensor | tuple[torch.Tensor, ...]
Func = Callable[[torch.Tensor, State], State]


class _TupleField(torch.nn.Module):
    """A tuple-state ``func`` as a field of one flat state [sum of numels]; an ``nn.Module`` so
    that the parameters of ``func`` (when a module) stay the parameters differentiated."""

    def __init__(self, func: Func, shapes: list[torch.Size]):
        super().__init__()
        self.base = func
        self.shapes = shapes
        self.sizes = [s.numel() for s in shapes]

    def split(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[..., N] -> the parts, each [..., *shape]."""
        lead = flat.shape[:-1]
        return tuple(p.reshape(*lead, *s) for p, s in zip(flat.split(self.sizes, -1), self.shapes))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.base(t, self.split(y))
        if not isinstance(out, (tuple, list)) or len(out) != len(self.shapes):
            raise InvalidInputError(
                f"func must return a tuple of {len(self.shapes)} tensors for a tuple state y0, "
                f"got {type(out).__name__}")
        for i, (o, s) in enumerate(zip(out, self.shapes)):
            if not isinstance(o, torch.Tensor) or o.shape != s:
                got = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
                raise InvalidInputError(f"func's output {i} is {got}, expected shape {tuple(s)}")
        return torch.cat([o.reshape(-1) for o in out])


def _flatten(func: Func, y0: tuple[torch.Tensor, ...]) -> tuple[_TupleField, torch.Tensor]:
    if not y0 or not all(isinstance(p, torch.Tensor) for p in y0):
        raise InvalidInputError("a tuple y0 must hold one or more tensors")
    if len({(p.dtype, p.device) for p in y0}) > 1:
        raise InvalidInputError(
            "the tensors of a tuple y0 must share dtype and device, got "
            + ", ".join(f"{p.dtype}/{p.device}" for p in y0))
    field = _TupleField(func, [p.shape for p in y0])
    return field, torch.cat([p.reshape(-1) for p in y0])


def _plain(func: Func) -> Func:
    """``func`` as a plain function, not a module: only ``params=`` are then differentiated."""

    def call(t: torch.Tensor, y: State) -> State:
        return func(t, y)

    return call


def solve(func: Func, y0: State, t: torch.Tensor, method: str = "dopri5", rtol: float = 1e-7,
          atol: float = 1e-9, gradient: str = "backprop", options: dict | None = None,
          params: Sequence[torch.Tensor] | None = None,
          batch_dims: int | None = None) -> Solution:
    """:func:`odebench.api.solve`, also for a tuple state: then ``Solution.ys`` is a tuple of
    tensors, part ``j`` of shape [len(t), *y0[j].shape]. ``batch_dims=1`` (per-sample steps)
    takes a tensor ``y0`` only."""
    if not isinstance(y0, tuple):
        return api.solve(func, y0, t, method=method, rtol=rtol, atol=atol, gradient=gradient,
                         options=options, params=params, batch_dims=batch_dims)
    if batch_dims is not None:
        raise InvalidInputError("batch_dims=1 takes a tensor y0 [B, *state], not a tuple state")
    field, flat = _flatten(func, y0)
    sol = api.solve(field, flat, t, method=method, rtol=rtol, atol=atol, gradient=gradient,
                    options=options, params=params)
    return Solution(ts=sol.ts, ys=field.split(sol.ys), stats=sol.stats)


def odeint(func: Func, y0: State, t: torch.Tensor, method: str = "dopri5", rtol: float = 1e-7,
           atol: float = 1e-9, gradient: str = "backprop", options: dict | None = None,
           params: Sequence[torch.Tensor] | None = None,
           batch_dims: int | None = None) -> State:
    """As :func:`solve`, returning only the states: a tensor [len(t), *y0.shape], or for a tuple
    state a tuple of such tensors. A drop-in for ``torchdiffeq.odeint``."""
    return solve(func, y0, t, method=method, rtol=rtol, atol=atol, gradient=gradient,
                 options=options, params=params, batch_dims=batch_dims).ys


def odeint_adjoint(func: Func, y0: State, t: torch.Tensor, *, rtol: float = 1e-7,
                   atol: float = 1e-9, method: str | None = None, options: dict | None = None,
                   adjoint_rtol: float | None = None, adjoint_atol: float | None = None,
                   adjoint_method: str | None = None, adjoint_options: dict | None = None,
                   adjoint_params: Sequence[torch.Tensor] | None = None) -> State:
    """torchdiffeq's ``odeint_adjoint``: the backsolve adjoint (``gradient="backsolve"``).

    Keywords as torchdiffeq's: ``method`` defaults to "dopri5"; ``adjoint_rtol``/``adjoint_atol``
    /``adjoint_method`` set the backward solve's (default: the forward's);
    ``adjoint_options={"norm": "seminorm"}`` leaves the parameter channels out of the backward
    error norm; ``adjoint_options["max_num_steps"]`` is the backward step budget. Other
    ``adjoint_options`` keys must repeat ``options``' values (the backward solve uses the
    forward's options); a different value or a custom norm raises InvalidInputError.
    ``adjoint_params``: the tensors differentiated besides y0 (default: ``func``'s parameters;
    ``func`` must then be an ``nn.Module``, as in torchdiffeq). Where torchdiffeq silently gives
    no gradient to a tensor requiring grad that ``func`` uses but ``adjoint_params`` leaves out,
    odebench refuses with InvalidInputError.
    """
    if adjoint_params is None and not isinstance(func, torch.nn.Module):
        raise InvalidInputError(
            "func must be an nn.Module when adjoint_params is not given (torchdiffeq's rule); "
            "pass adjoint_params=() if func has no parameters")
    opts = dict(options or {})
    for key, value in (adjoint_options or {}).items():
        if key == "norm":
            if value == "seminorm":
                opts["seminorm"] = True
            elif value not in ("default", None):
                raise InvalidInputError(
                    f"adjoint_options['norm']={value!r}: only 'seminorm' and 'default' are "
                    "supported (odebench's backward error norm is the mixed RMS norm)")
        elif key == "max_num_steps":
            opts["max_num_steps_backward"] = value
        elif key not in opts or opts[key] != value:
            raise InvalidInputError(
                f"adjoint_options['{key}']={value!r} differs from options; the backward solve "
                "uses the forward's options (only 'norm' and 'max_num_steps' may differ)")
    for key, value in (("adjoint_rtol", adjoint_rtol), ("adjoint_atol", adjoint_atol),
                       ("adjoint_method", adjoint_method)):
        if value is not None:
            opts[key] = value
    params = None
    if adjoint_params is not None:
        params = list(adjoint_params)
        func = _plain(func)
    return odeint(func, y0, t, method=method or "dopri5", rtol=rtol, atol=atol,
                  gradient="backsolve", options=opts or None, params=params)

"""The public entry points ``odeint`` and ``solve``: input checks, then the gradient method."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from odebench.errors import InvalidInputError, NonFiniteError
from odebench.gradients import GRADIENTS, check_combination
from odebench.gradients.base import OdeCall
from odebench.solution import Solution, Stats
from odebench.solvers import scheme
from odebench.solvers.func import all_finite
from odebench.solvers.options import SolverOptions
from odebench.solvers.registry import METHODS, check_method

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def solve(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str = "dopri5",
          rtol: float = 1e-7, atol: float = 1e-9, gradient: str = "backprop",
          options: dict | None = None, params: Sequence[torch.Tensor] | None = None) -> Solution:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0``, at the output times ``t``.

    Args:
        func: vector field ``func(t, y) -> dy/dt`` (torchdiffeq's convention); ``t`` is a 0-d
            tensor, ``y`` has the shape of ``y0``. If it is an ``nn.Module`` its parameters that
            require grad are differentiated.
        y0: initial state, any shape (a batch included), float32 or float64, CPU or CUDA.
        t: 1-D tensor of output times, strictly increasing or strictly decreasing (time units
            of ``func``); ``t[0]`` is the initial time.
        method: one of ``odebench.METHODS``.
        rtol, atol: relative and absolute tolerances (> 0) of the mixed error norm.
        gradient: one of ``odebench.GRADIENTS``: "backprop", "backsolve", "interpolated",
            "checkpointed", "forward" (forward sensitivities), "reversible" (needs
            ``method="reversible_heun"``; "checkpointed" and "interpolated" refuse that method).
        options: see :class:`odebench.solvers.options.SolverOptions` (step_size, max_num_steps,
            first_step, max_step, checkpoint_every, adjoint_rtol, adjoint_atol, adjoint_method,
            seminorm, reanchor, max_num_steps_backward).
        params: extra tensors to differentiate besides ``y0`` and the module's parameters.

    Returns:
        ``Solution(ts, ys, stats)`` with ``ys`` of shape [len(t), *y0.shape]; ``stats`` counts
        evaluations and steps, and ``stats.nfe_backward`` is filled in by ``.backward()``.

    Raises:
        InvalidInputError, MaxStepsExceededError, StepSizeUnderflowError, NonFiniteError.
    """
    call = _validate(func, y0, t, method, rtol, atol, gradient, options, params)
    stats = Stats()
    if len(call.ts) == 1:
        return Solution(ts=t, ys=y0.unsqueeze(0), stats=stats)
    needs_grad = torch.is_grad_enabled() and (
        y0.requires_grad or any(p.requires_grad for p in call.params))
    if not torch.is_grad_enabled():  # no graph recorded: nothing a guard could protect
        call.gradient = "backprop"
    method_solve = GRADIENTS[gradient] if needs_grad else GRADIENTS["backprop"]
    ys = method_solve(call, stats)
    return Solution(ts=t, ys=ys, stats=stats)


def odeint(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str = "dopri5",
           rtol: float = 1e-7, atol: float = 1e-9, gradient: str = "backprop",
           options: dict | None = None, params: Sequence[torch.Tensor] | None = None
           ) -> torch.Tensor:
    """As :func:`solve`, returning only the states: a tensor [len(t), *y0.shape].

    A drop-in for ``torchdiffeq.odeint(func, y0, t, rtol=, atol=, method=, options=)``.
    """
    return solve(func, y0, t, method=method, rtol=rtol, atol=atol, gradient=gradient,
                 options=options, params=params).ys


def _validate(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str, rtol: float,
              atol: float, gradient: str, options: dict | None,
              params: Sequence[torch.Tensor] | None) -> OdeCall:
    if not callable(func):
        raise InvalidInputError(f"func must be callable, got {type(func).__name__}")
    if not isinstance(y0, torch.Tensor):
        raise InvalidInputError(f"y0 must be a torch.Tensor, got {type(y0).__name__}")
    if y0.dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"y0 must be float32 or float64, got dtype {y0.dtype}")
    if y0.numel() == 0:
        raise InvalidInputError("y0 is empty")
    if not all_finite(y0):
        raise NonFiniteError("y0 contains NaN or inf values")
    if not isinstance(t, torch.Tensor):
        raise InvalidInputError(f"t must be a 1-D torch.Tensor, got {type(t).__name__}")
    if t.ndim != 1 or t.numel() == 0:
        raise InvalidInputError(f"t must be a non-empty 1-D tensor, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InvalidInputError(f"t must be a floating-point tensor, got dtype {t.dtype}")
    ts = t.tolist()  # Python floats: exact for float32 and float64 times
    if not all(math.isfinite(x) for x in ts):
        raise InvalidInputError("t contains NaN or inf values")
    if len(ts) > 1:
        diffs = [b - a for a, b in zip(ts[:-1], ts[1:])]
        if not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
            bad = next(i for i, d in enumerate(diffs) if d == 0 or (d > 0) != (diffs[0] > 0))
            raise InvalidInputError(
                f"t must be strictly increasing or strictly decreasing; t[{bad}]={ts[bad]:.6g}, "
                f"t[{bad + 1}]={ts[bad + 1]:.6g}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, torch.Tensor):
            raise InvalidInputError(f"{name} must be a positive float, got a Tensor")
        if not (isinstance(tol, (int, float)) and tol > 0 and math.isfinite(tol)):
            raise InvalidInputError(f"{name} must be a positive finite float, got {tol!r}")
    check_method(method)
    if gradient not in GRADIENTS:
        raise InvalidInputError(
            f"unknown gradient '{gradient}'; valid gradients: {', '.join(GRADIENTS)}")
    check_combination(gradient, method)
    opts = SolverOptions.parse(options)
    if opts.adjoint_method is not None:
        check_method(opts.adjoint_method)
    extra = list(params) if params is not None else []
    for i, p in enumerate(extra):
        if not isinstance(p, torch.Tensor):
            raise InvalidInputError(f"params[{i}] must be a Tensor, got {type(p).__name__}")
    # a solve that records no graph differentiates nothing: its parameters are not gathered
    module_params = (list(func.parameters())
                     if isinstance(func, torch.nn.Module) and torch.is_grad_enabled() else [])
    all_params = [p for p in module_params + extra if p.requires_grad]
    unique = list({id(p): p for p in all_params}.values())
    return OdeCall(func=func, y0=y0, ts=ts, scheme=scheme(method, y0.dtype, y0.device),
                   rtol=float(rtol), atol=float(atol), opts=opts, params=unique,
                   gradient=gradient)


__all__ = ["METHODS", "odeint", "solve"]

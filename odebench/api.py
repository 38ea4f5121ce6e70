"""The public entry points ``odeint`` and ``solve``: input checks, then the gradient method."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from odebench import segments
from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)
from odebench.gradients import GRADIENTS, check_combination, ignored_norm_options
from odebench.gradients.base import OdeCall
from odebench.gradients.time_grad import solve_with_time_gradient, wants_time_gradient
from odebench.solution import PerSampleStats, Solution, Stats
from odebench.solvers import batched, scheme
from odebench.solvers.func import all_finite
from odebench.solvers.options import SolverOptions
from odebench.solvers.registry import ADAPTIVE_METHODS, METHODS, check_method

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RTOL_FLOOR_EPS = 100.0


def solve(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str = "dopri5",
          rtol: float = 1e-7, atol: float = 1e-9, gradient: str = "backprop",
          options: dict | None = None, params: Sequence[torch.Tensor] | None = None,
          batch_dims: int | None = None) -> Solution:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0``, at the output times ``t``.

    Args:
        func: vector field ``func(t, y) -> dy/dt`` (torchdiffeq's convention); ``t`` is a 0-d
            tensor, ``y`` has the shape of ``y0``. If it is an ``nn.Module`` its parameters that
            require grad are differentiated.
        y0: initial state, any shape (a batch included), float32 or float64, CPU or CUDA.
        t: 1-D tensor of output times, strictly increasing or strictly decreasing (time units
            of ``func``); ``t[0]`` is the initial time. When ``t.requires_grad``, every entry of
            ``t`` is differentiated, with every gradient method (the exact flow's derivative:
            :mod:`odebench.gradients.time_grad`).
        method: one of ``odebench.METHODS``.
        rtol, atol: relative and absolute tolerances (> 0, real numbers, not bools) of the
            mixed error norm. An rtol below 100 x eps(dtype of y0) is raised to that, with a
            RuntimeWarning (as SciPy does); so is ``options["adjoint_rtol"]``.
        gradient: one of ``odebench.GRADIENTS``: "backprop", "backsolve", "interpolated",
            "checkpointed", "forward" (forward sensitivities), "reversible" (needs
            ``method="reversible_heun"``; "checkpointed" and "interpolated" refuse that method).
        options: see :class:`odebench.solvers.options.SolverOptions` (step_size, max_num_steps,
            first_step, max_step, checkpoint_every, adjoint_rtol, adjoint_atol, adjoint_method,
            seminorm, reanchor, max_num_steps_backward, and torchdiffeq's step_t, jump_t,
            perturb, dtype). A fixed-step method (euler, midpoint, rk4) without ``step_size``
            takes one step per output interval, as torchdiffeq does: the output grid is the step
            grid (a warning says so when it has fewer than 10 points per unit of time).
        params: extra tensors to differentiate besides ``y0`` and the module's parameters
            (a sequence, e.g. ``[w]``; a bare tensor is refused).
        batch_dims: ``None`` (default): one step size for the whole ``y0``. ``1``: the leading
            dimension of ``y0`` [B, *state] is a batch of independent samples, each with its own
            adaptive steps, error norm, accept/reject decisions and counters
            (``stats.per_sample``; :mod:`odebench.solvers.batched`); ``t`` may then be [T]
            (shared) or [B, T] (row b: sample b's output times, each row strictly monotone, all
            in one direction), ``func`` receives ``t`` as a tensor [B, 1, ..., 1] (each sample's
            time, broadcasting against ``y``), and ``options["max_num_steps"]`` is each sample's
            budget. Adaptive explicit methods (bosh3, dopri5, tsit5, dop853) with
            gradient="backprop" or "checkpointed" only.

    Returns:
        ``Solution(ts, ys, stats)`` with ``ys`` of shape [len(t), *y0.shape] (with ``t`` [B, T]:
        [T, B, *state], ``ys[i, b]`` sample b at ``t[b, i]``); ``stats`` counts evaluations and
        steps, and ``stats.nfe_backward`` is filled in by ``.backward()``.

    Raises:
        InvalidInputError, MaxStepsExceededError, StepSizeUnderflowError, NonFiniteError.
    """
    if batch_dims is not None:
        return _solve_batched(func, y0, t, method, rtol, atol, gradient, options, params,
                              batch_dims)
    call = _validate(func, y0, t, method, rtol, atol, gradient, options, params)
    stats = Stats()
    if len(call.ts) == 1:
        return Solution(ts=t, ys=y0.unsqueeze(0), stats=stats)
    _warn_coarse_output_grid(call)
    for message in ignored_norm_options(gradient, method, call.opts):
        warnings.warn(message, RuntimeWarning, stacklevel=_outside_odebench())
    if not torch.is_grad_enabled():  # no graph recorded: nothing a guard could protect
        call.gradient = "backprop"

    def run(y_start: torch.Tensor) -> torch.Tensor:
        return segments.solve(call if y_start is y0 else dataclasses.replace(call, y0=y_start),
                              stats)

    try:
        ys = (solve_with_time_gradient(func, y0, t, run, stats) if wants_time_gradient(t)
              else run(y0))
    except (MaxStepsExceededError, StepSizeUnderflowError, NonFiniteError) as err:
        if err.partial is not None:  # the output times reached, as the caller's t holds them
            err.partial.ts = t[: len(err.partial.ts)].detach()
        raise
    return Solution(ts=t, ys=ys, stats=stats)


def odeint(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str = "dopri5",
           rtol: float = 1e-7, atol: float = 1e-9, gradient: str = "backprop",
           options: dict | None = None, params: Sequence[torch.Tensor] | None = None,
           batch_dims: int | None = None) -> torch.Tensor:
    """As :func:`solve`, returning only the states: a tensor [len(t), *y0.shape].

    A drop-in for ``torchdiffeq.odeint(func, y0, t, rtol=, atol=, method=, options=)``.
    """
    return solve(func, y0, t, method=method, rtol=rtol, atol=atol, gradient=gradient,
                 options=options, params=params, batch_dims=batch_dims).ys


#: Options a batched solve (``batch_dims=1``) takes; any other key set is refused.
BATCHED_OPTIONS = ("max_num_steps", "first_step", "max_step", "checkpoint_every")


def _solve_batched(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str, rtol: float,
                   atol: float, gradient: str, options: dict | None,
                   params: Sequence[torch.Tensor] | None, batch_dims: object) -> Solution:
    """``solve(..., batch_dims=1)``: validation, then the per-sample loop."""
    if isinstance(batch_dims, bool) or batch_dims != 1:
        raise InvalidInputError(
            f"batch_dims must be None (one joint step size) or 1 (one leading batch dimension), "
            f"got {batch_dims!r}")
    if isinstance(t, torch.Tensor) and t.ndim not in (1, 2):
        raise InvalidInputError(
            f"with batch_dims=1, t must be [T] or [B, T], got shape {tuple(t.shape)}")
    two_d = isinstance(t, torch.Tensor) and t.ndim == 2
    call = _validate(func, y0, t[0] if two_d and len(t) else t, method, rtol, atol, gradient,
                     options, params)
    if y0.ndim < 1:
        raise InvalidInputError("with batch_dims=1, y0 must have a leading batch dimension "
                                "[B, *state], got a 0-d tensor")
    if method not in ADAPTIVE_METHODS:
        raise InvalidInputError(
            f"batch_dims=1 runs the adaptive explicit methods only ({', '.join(ADAPTIVE_METHODS)}); "
            f"method '{method}' is not supported with per-sample steps")
    if gradient not in batched.BATCHED_GRADIENTS:
        raise InvalidInputError(
            f"gradient='{gradient}' is not supported with batch_dims=1; use one of "
            f"{', '.join(batched.BATCHED_GRADIENTS)}")
    if wants_time_gradient(t):
        raise InvalidInputError("gradients with respect to t (t.requires_grad) are not supported "
                                "with batch_dims=1; detach t or use batch_dims=None")
    unsupported = [f.name for f in dataclasses.fields(call.opts) if f.name not in BATCHED_OPTIONS
                   and getattr(call.opts, f.name) != f.default]
    if unsupported:
        raise InvalidInputError(
            f"option(s) {unsupported} are not supported with batch_dims=1; it takes "
            f"{', '.join(BATCHED_OPTIONS)}")
    rows = t.tolist() if two_d else [call.ts] * y0.shape[0]
    if two_d:
        if t.shape[0] != y0.shape[0]:
            raise InvalidInputError(
                f"t of shape {tuple(t.shape)} must have one row per sample: y0 has batch size "
                f"{y0.shape[0]}")
        for b, row in enumerate(rows):
            if not all(math.isfinite(x) for x in row):
                raise InvalidInputError(f"t[{b}] contains NaN or inf values")
            check_monotone(row, f"t[{b}]")
            if len(row) > 1 and (row[-1] > row[0]) != (call.ts[-1] > call.ts[0]):
                raise InvalidInputError(
                    f"every row of t must run in the same direction; t[0] runs "
                    f"{'forward' if call.ts[-1] > call.ts[0] else 'backward'}, t[{b}] does not")
    stats = Stats(per_sample=PerSampleStats.zeros(y0.shape[0]))
    if len(call.ts) == 1:
        return Solution(ts=t, ys=y0.unsqueeze(0), stats=stats)
    opts = call.opts
    run = batched.BatchedCall(
        func=func, y0=y0, ts=np.asarray(rows, dtype=np.float64), method=method, rtol=call.rtol,
        atol=call.atol, max_steps=opts.max_num_steps, first_step=opts.first_step,
        max_step=opts.max_step, checkpoint_every=opts.checkpoint_every, gradient=gradient,
        params=call.params)
    return Solution(ts=t, ys=batched.solve(run, stats), stats=stats)


def _warn_coarse_output_grid(call: OdeCall) -> None:
    """A fixed-step method without ``step_size`` steps on the output grid (torchdiffeq's rule):
    warn when that grid has fewer than 10 points per unit of time (``euler`` with t=[0, 1] takes
    one step)."""
    if call.scheme.adaptive or call.opts.step_size is not None:
        return
    span = abs(call.ts[-1] - call.ts[0])
    if len(call.ts) < 10 * span:
        warnings.warn(
            f"method '{call.scheme.name}' without options['step_size'] takes one step per output "
            f"interval: {len(call.ts) - 1} step(s) over a time span of {span:.6g}; pass "
            "options={'step_size': h} or a finer t", UserWarning, stacklevel=3)


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
    check_monotone(ts, "t")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        check_tolerance(name, tol)
    check_method(method)
    if gradient not in GRADIENTS:
        raise InvalidInputError(
            f"unknown gradient '{gradient}'; valid gradients: {', '.join(GRADIENTS)}")
    check_combination(gradient, method)
    opts = SolverOptions.parse(options)
    if opts.adjoint_method is not None:
        check_method(opts.adjoint_method)
    if isinstance(params, torch.Tensor) or not (params is None or isinstance(params, Iterable)):
        raise InvalidInputError(
            f"params must be a sequence of tensors (e.g. params=[w]), got "
            f"{'a Tensor' if isinstance(params, torch.Tensor) else type(params).__name__}")
    extra = list(params) if params is not None else []
    for i, p in enumerate(extra):
        if not isinstance(p, torch.Tensor):
            raise InvalidInputError(f"params[{i}] must be a Tensor, got {type(p).__name__}")
    # a solve that records no graph differentiates nothing: its parameters are not gathered
    module_params = (list(func.parameters())
                     if isinstance(func, torch.nn.Module) and torch.is_grad_enabled() else [])
    all_params = [p for p in module_params + extra if p.requires_grad]
    unique = list({id(p): p for p in all_params}.values())
    rtol = resolvable_rtol("rtol", rtol, y0.dtype)
    if opts.adjoint_rtol is not None:
        opts = dataclasses.replace(opts, adjoint_rtol=resolvable_rtol(
            "options['adjoint_rtol']", opts.adjoint_rtol, y0.dtype))
    return OdeCall(func=func, y0=y0, ts=ts, scheme=scheme(method, y0.dtype, y0.device),
                   rtol=rtol, atol=float(atol), opts=opts, params=unique,
                   gradient=gradient, t_dtype=t.dtype)


def check_monotone(ts: list[float], name: str) -> None:
    """Raise InvalidInputError unless the times ``ts`` (named ``name`` in the message, e.g.
    "t" or "t[3]") are strictly increasing or strictly decreasing."""
    if len(ts) > 1:
        diffs = [b - a for a, b in zip(ts[:-1], ts[1:])]
        if not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
            bad = next(i for i, d in enumerate(diffs) if d == 0 or (d > 0) != (diffs[0] > 0))
            raise InvalidInputError(
                f"{name} must be strictly increasing or strictly decreasing; "
                f"{name}[{bad}]={ts[bad]:.6g}, {name}[{bad + 1}]={ts[bad + 1]:.6g}")


def check_tolerance(name: str, tol: object) -> None:
    """Raise InvalidInputError unless ``tol`` is a positive finite real number (not a bool, not
    a tensor: nothing is coerced)."""
    if isinstance(tol, torch.Tensor):
        raise InvalidInputError(f"{name} must be a positive float, got a Tensor")
    if isinstance(tol, bool) or not (isinstance(tol, numbers.Real) and tol > 0
                                     and math.isfinite(tol)):
        raise InvalidInputError(f"{name} must be a positive finite float, got {tol!r}")


def resolvable_rtol(name: str, rtol: float, dtype: torch.dtype) -> float:
    """``rtol`` raised to :data:`RTOL_FLOOR_EPS` x eps(dtype) with a warning when it is below
    (as SciPy's solve_ivp does with 100 x eps): an error estimate below that is roundoff, and
    the solver would take ever more steps for a worse answer."""
    floor = RTOL_FLOOR_EPS * torch.finfo(dtype).eps
    if rtol >= floor:
        return float(rtol)
    warnings.warn(f"{name}={rtol:g} is below what {dtype} resolves; using {name}={floor:.3g} "
                  f"({RTOL_FLOOR_EPS:g} x eps)", RuntimeWarning, stacklevel=_outside_odebench())
    return floor


def _outside_odebench() -> int:
    """The ``stacklevel`` (for a warning raised by the caller) of the first frame outside the
    odebench package: the user's call."""
    root = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(root):
        level, frame = level + 1, frame.f_back
    return level


__all__ = ["METHODS", "odeint", "solve"]

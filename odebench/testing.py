"""Gradient checks for your own CI: is the gradient of *your* neural ODE configuration right?

``check_gradients(func, y0, t, method=..., gradient=..., rtol=..., atol=...)`` differentiates a
loss of the solution w.r.t. ``y0`` and every parameter of ``func`` that requires grad, exactly
as configured, and compares each of those gradient tensors with a trusted reference computed the
expensive way. ``assert_gradients_close`` raises ``AssertionError`` with the report as message.

The loss (default): ``L = sum(W * ys)`` with ``ys`` the solution ``[len(t), *y0.shape]`` and ``W``
a fixed standard-normal projection of the same shape, seeded (:data:`LOSS_SEED`), so every output
at every time enters the check with a random sign and weight.

The reference (always float64, on the device of ``y0``; a float32 module is deep-copied and cast
with ``copy.deepcopy(func).double()``, the user's module is never touched):

* ``"directional"``: randomized directional finite differences, no backward pass anywhere:
  for each tensor (``y0``, then each parameter) :data:`DIRECTIONS` (4) random orthonormal
  directions ``v`` (seeded; all directions of a tensor with fewer entries), and for each the
  central difference ``D(h) = (L(theta + h v) - L(theta - h v)) / 2h`` of the float64 loss at
  ``h = DIRECTION_STEP * max(1, rms(theta))`` (1e-3) and ``h / 2``, Richardson-extrapolated to
  ``(4 D(h/2) - D(h)) / 3``; each loss from a no-grad solve with the ``"fd"`` settings below.
  The tensor's error is ``||V g - d|| / ||d||`` (``V`` the directions, ``g`` your gradient,
  ``d`` the reference derivatives). Costs ``16`` solves per tensor.
  What it catches: any wrong gradient (a custom ``torch.autograd.Function``'s backward, a
  fault of the gradient method) with probability 1, since a fixed nonzero error is orthogonal
  to random directions with probability 0; for random ``V``, ``||V e||^2`` and ``||V g||^2``
  are in mean k/n of ``||e||^2`` and ``||g||^2``, so the error it reads estimates the relative
  L2 error. What it cannot: it sees an error only through its
  projection on the k directions, so an error near the budget may read a few times smaller
  than it is (the spread shrinks as k grows), and the part of an error orthogonal to all k
  directions is invisible.
* ``"fd"``: central finite differences of the float64 loss, one entry at a time, step
  ``h = 1e-5 * max(1, |theta_i|)``, each loss from a no-grad solve with the checkpointed
  reference's method at its tolerances capped at 1e-11 (the difference quotient divides the
  solve's error by ``2h``). Costs ``2 * (y0.numel() + n_params)`` solves; sees every entry.
* ``"checkpointed"``: ``odebench.solve(..., gradient="checkpointed")`` in float64 at tolerances
  :data:`REFERENCE_TIGHTENING` (1e-3) times the user's (rtol floored at 1e-13). Adaptive explicit
  methods are replaced by ``dop853`` (8th order: 3-4x fewer steps than dopri5 at these tolerances,
  and independent of the user's tableau); fixed-step runs (euler/midpoint/rk4, or any method with
  ``options={"step_size": h}``) and the implicit methods keep the user's method and step options,
  so the reference is then the exact derivative of the same discrete map (the finite-difference
  references use the same method choice).
* ``"forward"``: forward-sensitivity equations integrated by SciPy in float64 (DOP853, or Radau
  for an implicit ``method``) via :func:`odebench.reference.gradient`, Jacobians by
  ``torch.func.jacrev`` through ``torch.func.functional_call`` of the module; on the CPU. Its
  cost grows as ``y0.numel() * (y0.numel() + n_params)``.
* ``"auto"`` (default): ``"fd"`` when ``y0.numel() + n_params <= FD_MAX_ENTRIES`` (50), else
  ``"directional"``: the default never runs a backward pass of the code it checks.

``"checkpointed"`` and ``"forward"`` differentiate ``func`` with autograd, so they trust the
module's own derivatives (a custom ``torch.autograd.Function``'s backward), and
``"checkpointed"`` trusts odebench's checkpointed method: only ``"fd"`` and ``"directional"``
check those too. Every report states its reference and what it can catch
(:data:`REFERENCE_SCOPE`).

The budget: the largest allowed relative L2 error of each gradient tensor,
``max(BUDGET_RTOL_FACTOR * rtol, BUDGET_EPS_FACTOR * eps(dtype))`` = ``max(100 rtol, 1000 eps)``
unless given. An adaptive solve controls the local error to ~rtol; the global error of the
solution and of its exact derivative is a modest multiple of that (measured 0.1-42 x rtol for
backprop/checkpointed/interpolated on mlp, lorenz T=1, vdp, lotka_volterra with dopri5 at
rtol 1e-4...1e-8), so 100 x rtol passes a correct gradient while a drifting adjoint (backsolve:
1e3-1e4 x rtol on lorenz and vdp) or a wrong backward (O(1)) breaks it. The floor ``1000 eps``
(1.2e-4 in float32, 2.2e-13 in float64) is what roundoff accumulated over hundreds of steps
allows. (An rtol below 100 eps(dtype), 1.2e-5 in float32, is raised to that with a warning, as
:func:`odebench.solve` does, and the report shows the rtol that ran.) The reference itself
is accurate to ~rtol/10 or better, far inside the budget. The budget assumes ``atol`` is small
next to ``rtol * |y|`` (the usual setting); pass ``budget=`` to state the accuracy your training needs.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import odebench
from odebench.api import check_tolerance, resolvable_rtol
from odebench.errors import InvalidInputError, OdeBenchError
from odebench.gradients import method_for
from odebench.measure.errors import relative_l2
from odebench.measure.memory import SavedTensorMeter
from odebench.solvers.registry import ADAPTIVE_METHODS, STIFF_METHODS

Func = Callable[[Tensor, Tensor], Tensor]
Loss = Callable[[Tensor], Tensor]

REFERENCES = ("auto", "directional", "checkpointed", "fd", "forward")
REFERENCE_TIGHTENING = 1e-3
REFERENCE_RTOL_FLOOR = 1e-13
REFERENCE_METHOD = "dop853"
FD_RTOL_CAP = 1e-11
FD_STEP = 1e-5
FD_MAX_ENTRIES = 50
DIRECTIONS = 4
DIRECTION_STEP = 1e-3
DIRECTION_SEED = 1
# What each reference can and cannot catch (stated in every report).
REFERENCE_SCOPE = {
    "fd": "backward-free: every entry's derivative by central differences of the float64 loss; "
          "catches any wrong backward of func or of the solver",
    "directional": (
        f"backward-free: v.grad against central differences of the float64 loss along "
        f"{DIRECTIONS} random orthonormal directions v per tensor (all directions when the "
        "tensor has fewer entries); catches a wrong backward of func or of the solver with "
        "probability 1 (a fixed nonzero error is orthogonal to random directions with "
        "probability 0), and the error it reads estimates the relative L2 error (its numerator "
        "and denominator are, in mean square, k/n of the whole ones), but it cannot see the "
        "part of an error orthogonal to all the directions, so an error near the budget may "
        "read a few times smaller"),
    "checkpointed": "runs func's own backward in float64: cannot catch a wrong backward of func "
                    "(a custom autograd.Function) or of the checkpointed method itself",
    "forward": "differentiates func with torch.func (its custom Functions' own derivatives): "
               "cannot catch a wrong backward of func",
}
BUDGET_RTOL_FACTOR = 100.0
BUDGET_EPS_FACTOR = 1000.0
LOSS_SEED = 0
MIN_REFERENCE_STEPS = 100_000
# Options of the user's run that also shape the reference's forward solve; the others
# (adjoint_*, seminorm, reanchor, checkpoint_every, ...) only concern the gradient method.
REFERENCE_OPTION_KEYS = ("step_size", "first_step", "max_step", "max_num_steps")
SETTINGS_KEYS = ("method", "rtol", "atol", "loss", "reference", "budget", "options", "gradients")


@dataclass
class RunStats:
    """Cost of one gradient computation.

    Attributes:
        nfe: vector-field evaluations of the forward pass (for "fd": of all its solves; for
            "forward": evaluations of the field with its Jacobians in SciPy).
        nfe_backward: evaluations of the backward pass (0 for "fd" and "forward").
        recon_error: backsolve's relative L2 drift of the re-integrated ``y0``; else ``None``.
        saved_bytes: bytes saved for the backward pass, autograd's and the method's own.
        wall_s: wall-clock seconds, forward and backward.
    """

    nfe: int = 0
    nfe_backward: int = 0
    recon_error: float | None = None
    saved_bytes: int = 0
    wall_s: float = 0.0


@dataclass
class _Gradients:
    """Named gradients (float64 numpy arrays, each of its tensor's shape) and what they cost.

    ``label`` describes how they were computed; ``error`` is the typed odebench error that
    stopped the run (then ``grads`` is empty). A directional reference holds in ``grads[name]``
    the derivatives [k] along ``directions[name]`` [k, *shape] instead of whole gradients.
    """

    grads: dict[str, np.ndarray]
    stats: RunStats
    label: str
    error: str = ""
    directions: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class GradientReport:
    """One configuration's gradients against the reference.

    Attributes:
        method, gradient, rtol, atol: the configuration checked.
        dtype, device: of ``y0`` (e.g. "float32", "cpu").
        reference: "directional", "fd", "checkpointed" or "forward"; ``reference_settings``
            its details.
        budget: largest allowed relative L2 error per tensor; ``budget_source`` says why.
        errors: relative L2 error of each gradient tensor ("y0", then the module's parameter
            names), ``||g - g_ref|| / ||g_ref||`` (the absolute error where ``g_ref`` is 0);
            ``inf`` when the run stopped or returned non-finite values.
        shapes: each tensor's shape.
        run, reference_run: costs of the two computations.
        stopped: the typed error that stopped the configured run, "" when it finished.
        reference_scope: what the reference can and cannot catch (:data:`REFERENCE_SCOPE`).
    """

    method: str
    gradient: str
    rtol: float
    atol: float
    dtype: str
    device: str
    reference: str
    reference_settings: str
    budget: float
    budget_source: str
    errors: dict[str, float]
    shapes: dict[str, tuple[int, ...]]
    run: RunStats
    reference_run: RunStats
    stopped: str = ""
    reference_scope: str = ""

    @property
    def worst(self) -> str:
        """Name of the tensor with the largest error."""
        return max(self.errors, key=lambda name: _sortable(self.errors[name]))

    @property
    def worst_error(self) -> float:
        """The largest relative L2 error."""
        return self.errors[self.worst]

    @property
    def ok(self) -> bool:
        """Whether the run finished and every tensor's error is within the budget."""
        return not self.stopped and all(e <= self.budget for e in self.errors.values())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields, plus ``ok``, ``worst`` and ``worst_error``."""
        data = asdict(self)
        data["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        data.update(ok=self.ok, worst=self.worst, worst_error=self.worst_error)
        return data

    def headline(self) -> str:
        """One line: the verdict, the worst tensor and the size of its error."""
        verdict = "passed" if self.ok else "FAILED"
        where = f"{self.method} / {self.gradient}"
        if self.stopped:
            return f"odebench gradient check FAILED ({where}): the run stopped: {self.stopped}"
        relation = "<=" if self.worst_error <= self.budget else ">"
        return (f"odebench gradient check {verdict} ({where}): worst tensor '{self.worst}' has "
                f"relative L2 error {self.worst_error:.3e} {relation} budget {self.budget:.3e}")

    def __str__(self) -> str:
        name_w = max(8, *(len(name) for name in self.errors))
        lines = [
            self.headline(),
            f"  run:       {self.method}, gradient={self.gradient}, {self.dtype} on {self.device}, "
            f"rtol={self.rtol:g}, atol={self.atol:g}",
            f"  reference: {self.reference} ({self.reference_settings})",
            f"  it is:     {self.reference_scope}",
            f"  budget:    {self.budget:.3e} relative L2 error per tensor ({self.budget_source})",
            "",
            f"  {'tensor':<{name_w}}  {'shape':<14} {'rel. L2 error':>13}  verdict",
        ]
        for name, error in self.errors.items():
            shape = "[" + ", ".join(str(s) for s in self.shapes[name]) + "]"
            verdict = "ok" if error <= self.budget else "BREACH"
            lines.append(f"  {name:<{name_w}}  {shape:<14} {error:>13.3e}  {verdict}")
        lines += ["", f"  {'':<10} {'NFE fwd':>8} {'NFE bwd':>8} {'saved MiB':>10} "
                      f"{'recon. err':>10} {'wall s':>8}"]
        for label, stats in (("yours", self.run), ("reference", self.reference_run)):
            recon = "-" if stats.recon_error is None else f"{stats.recon_error:.2e}"
            lines.append(f"  {label:<10} {stats.nfe:>8} {stats.nfe_backward:>8} "
                         f"{stats.saved_bytes / 2**20:>10.3f} {recon:>10} {stats.wall_s:>8.2f}")
        return "\n".join(lines)


def _sortable(error: float) -> float:
    return math.inf if math.isnan(error) else error


def default_budget(rtol: float, dtype: torch.dtype) -> float:
    """``max(100 * rtol, 1000 * eps(dtype))``: see the module docstring for why."""
    return max(BUDGET_RTOL_FACTOR * rtol, BUDGET_EPS_FACTOR * torch.finfo(dtype).eps)


def projection_loss(n_times: int, shape: Sequence[int]) -> Loss:
    """The default loss ``L(ys) = sum(W * ys)``, ``W ~ N(0, 1)`` of shape ``[n_times, *shape]``.

    ``W`` is drawn in float64 on the CPU from a generator seeded with :data:`LOSS_SEED` (the
    same on every machine) and cast to the dtype and device of ``ys`` at each call.
    """
    gen = torch.Generator().manual_seed(LOSS_SEED)
    weights = torch.randn((n_times, *shape), generator=gen, dtype=torch.float64)

    def loss(ys: Tensor) -> Tensor:
        return (ys * weights.to(dtype=ys.dtype, device=ys.device)).sum()

    return loss


def named_parameters(func: Func) -> list[tuple[str, Tensor]]:
    """``(name, tensor)`` of the parameters of ``func`` that require grad (none for a plain
    callable), each shared tensor once."""
    if not isinstance(func, nn.Module):
        return []
    return [(name, p) for name, p in func.named_parameters() if p.requires_grad]


@dataclass(frozen=True)
class _Config:
    """A validated check: everything but the gradient method."""

    func: Func
    y0: Tensor
    t: Tensor
    method: str
    rtol: float
    atol: float
    loss: Loss
    reference: str
    options: dict[str, Any] = field(default_factory=dict)


def _config(func: Func, y0: Tensor, t: Tensor, method: str, rtol: float, atol: float,
            loss: Loss | None, reference: str, options: dict | None) -> _Config:
    if not isinstance(y0, Tensor) or not isinstance(t, Tensor):
        raise InvalidInputError("y0 and t must be torch.Tensors")
    if method not in odebench.METHODS:
        raise InvalidInputError(f"unknown method '{method}'; valid methods: "
                                f"{', '.join(odebench.METHODS)}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        check_tolerance(name, value)
    rtol = resolvable_rtol("rtol", rtol, y0.dtype)
    if reference not in REFERENCES:
        raise InvalidInputError(f"unknown reference '{reference}'; valid: {', '.join(REFERENCES)}")
    if reference == "auto":
        entries = y0.numel() + sum(p.numel() for _, p in named_parameters(func))
        reference = "fd" if entries <= FD_MAX_ENTRIES else "directional"
    return _Config(func, y0.detach(), t.detach(), method, float(rtol), float(atol),
                   loss or projection_loss(len(t), y0.shape), reference, dict(options or {}))


def _gradients_of(func: Func, y0: Tensor, t: Tensor, cfg: _Config, method: str, gradient: str,
                  rtol: float, atol: float, options: dict) -> _Gradients:
    """Run one configuration and differentiate ``cfg.loss`` by autograd (``.grad`` untouched)."""
    named = [("y0", y0.clone().requires_grad_(True)), *named_parameters(func)]
    start = time.perf_counter()
    label = f"{method}, {str(y0.dtype).removeprefix('torch.')} on {y0.device}, "
    label += f"rtol={rtol:g}, atol={atol:g}"
    try:
        with SavedTensorMeter() as meter:
            sol = odebench.solve(func, named[0][1], t, method=method, rtol=rtol, atol=atol,
                                 gradient=gradient, options=options)
            value = cfg.loss(sol.ys)
        grads = torch.autograd.grad(value, [p for _, p in named], allow_unused=True)
    except OdeBenchError as err:
        return _Gradients({}, RunStats(wall_s=time.perf_counter() - start), label,
                          f"{type(err).__name__}: {err}")
    stats = RunStats(sol.stats.nfe, sol.stats.nfe_backward, sol.stats.recon_error,
                     meter.bytes + sol.stats.saved_bytes, time.perf_counter() - start)
    arrays = {name: _numpy(g, p) for (name, p), g in zip(named, grads, strict=True)}
    return _Gradients(arrays, stats, label)


def _numpy(grad: Tensor | None, like: Tensor) -> np.ndarray:
    if grad is None:
        return np.zeros(tuple(like.shape))
    return grad.detach().to(device="cpu", dtype=torch.float64).numpy()


def _fixed_grid(method: str, options: dict) -> bool:
    return method not in ADAPTIVE_METHODS + STIFF_METHODS or options.get("step_size") is not None


def _reference_setup(cfg: _Config) -> tuple[str, float, float, dict]:
    """``(method, rtol, atol, options)`` of the float64 reference solves."""
    method = cfg.method
    if method in ADAPTIVE_METHODS and not _fixed_grid(method, cfg.options):
        method = REFERENCE_METHOD
    options = {k: v for k, v in cfg.options.items() if k in REFERENCE_OPTION_KEYS}
    options["max_num_steps"] = max(int(options.get("max_num_steps", 0)), MIN_REFERENCE_STEPS)
    rtol = max(cfg.rtol * REFERENCE_TIGHTENING, REFERENCE_RTOL_FLOOR)
    return method, rtol, cfg.atol * REFERENCE_TIGHTENING, options


def _float64_copy(func: Func) -> Func:
    return copy.deepcopy(func).double() if isinstance(func, nn.Module) else func


def _reference_gradients(cfg: _Config) -> _Gradients:
    """The float64 reference gradients of ``cfg.loss`` by ``cfg.reference`` (not "auto")."""
    func64 = _float64_copy(cfg.func)
    y0, t = cfg.y0.double(), cfg.t.double()
    method, rtol, atol, options = _reference_setup(cfg)
    if cfg.reference == "checkpointed":
        result = _gradients_of(func64, y0, t, cfg, method, "checkpointed", rtol, atol, options)
        if result.error:
            raise RuntimeError(f"the checkpointed float64 reference failed: {result.error}")
        return result
    if cfg.reference in ("fd", "directional"):
        capped = min(rtol, FD_RTOL_CAP)
        differences = _finite_differences if cfg.reference == "fd" else _directional
        return differences(func64, y0, t, cfg.loss, method, capped, atol * capped / rtol,
                           options)
    return _forward_sensitivities(func64, y0, t, cfg.loss, method in STIFF_METHODS, rtol, atol)


class _LossValues:
    """``L`` of a no-grad float64 solve from a state, counting the solves' evaluations."""

    def __init__(self, func: Func, t: Tensor, loss: Loss, method: str, rtol: float,
                 atol: float, options: dict):
        self.func, self.t, self.loss = func, t, loss
        self.method, self.rtol, self.atol, self.options = method, rtol, atol, options
        self.nfe = 0

    def __call__(self, state: Tensor) -> float:
        sol = odebench.solve(self.func, state, self.t, method=self.method, rtol=self.rtol,
                             atol=self.atol, options=self.options)
        self.nfe += sol.stats.nfe
        return float(self.loss(sol.ys))

    def settings(self, device: torch.device) -> str:
        return (f"{self.method}, float64 on {device}, rtol={self.rtol:g}, atol={self.atol:g}")


def _finite_differences(func: Func, y0: Tensor, t: Tensor, loss: Loss, method: str,
                        rtol: float, atol: float, options: dict) -> _Gradients:
    """Central differences of ``loss`` w.r.t. every entry of y0 and of each parameter."""
    start = time.perf_counter()
    value = _LossValues(func, t, loss, method, rtol, atol, options)
    grads = {}
    with torch.no_grad():
        state = y0.clone()
        for name, tensor in [("y0", state), *named_parameters(func)]:
            grad = np.zeros(tuple(tensor.shape))
            for index in np.ndindex(*tensor.shape):
                original = float(tensor[index])
                step = FD_STEP * max(1.0, abs(original))
                tensor[index] = original + step
                upper, plus = value(state), float(tensor[index])
                tensor[index] = original - step
                lower, minus = value(state), float(tensor[index])
                tensor[index] = original
                grad[index] = (upper - lower) / (plus - minus)
            grads[name] = grad
    label = f"central differences, step {FD_STEP:g} * max(1, |x|), {value.settings(y0.device)}"
    return _Gradients(grads, RunStats(nfe=value.nfe, wall_s=time.perf_counter() - start), label)


def random_directions(n: int, k: int, seed: int) -> np.ndarray:
    """``min(k, n)`` orthonormal directions in R^n, shape [min(k, n), n], drawn uniformly
    (QR of a seeded standard-normal matrix; the same on every machine)."""
    gen = np.random.default_rng(seed)
    q, _ = np.linalg.qr(gen.standard_normal((n, min(k, n))))
    return q.T


def _directional(func: Func, y0: Tensor, t: Tensor, loss: Loss, method: str, rtol: float,
                 atol: float, options: dict) -> _Gradients:
    """Directional derivatives ``v . dL/dtheta`` of the float64 loss along
    :func:`random_directions` of each tensor (y0, then each parameter), with no backward pass:
    central differences ``D(h) = (L(theta + h v) - L(theta - h v)) / 2h`` at
    ``h = DIRECTION_STEP * max(1, rms(theta))`` and ``h / 2``, Richardson-extrapolated to
    ``(4 D(h/2) - D(h)) / 3`` (error O(h^4)). ``grads[name]`` holds the derivatives [k],
    ``directions[name]`` the directions [k, *shape]."""
    start = time.perf_counter()
    value = _LossValues(func, t, loss, method, rtol, atol, options)
    grads, directions, spread = {}, {}, 0.0
    with torch.no_grad():
        state = y0.clone()
        for i, (name, tensor) in enumerate([("y0", state), *named_parameters(func)]):
            original = tensor.clone()
            vs = random_directions(tensor.numel(), DIRECTIONS, DIRECTION_SEED + i)
            h = DIRECTION_STEP * max(1.0, float(original.pow(2).mean().sqrt()))
            derivs, coarse = np.zeros(len(vs)), np.zeros(len(vs))
            for j, v in enumerate(vs):
                v_t = torch.as_tensor(v, dtype=tensor.dtype, device=tensor.device)
                quotients = []
                for step in (h, h / 2):
                    tensor.copy_(original + step * v_t.view_as(tensor))
                    upper = value(state)
                    tensor.copy_(original - step * v_t.view_as(tensor))
                    lower = value(state)
                    quotients.append((upper - lower) / (2 * step))
                tensor.copy_(original)
                coarse[j] = quotients[1]
                derivs[j] = (4 * quotients[1] - quotients[0]) / 3
            grads[name] = derivs
            directions[name] = vs.reshape(len(vs), *tensor.shape)
            spread = max(spread, relative_l2(coarse, derivs))
    label = (f"central differences along {DIRECTIONS} random directions per tensor, steps h and "
             f"h/2 (h = {DIRECTION_STEP:g} * max(1, rms)), Richardson; {value.settings(y0.device)};"
             f" unextrapolated vs extrapolated {spread:.1e}")
    return _Gradients(grads, RunStats(nfe=value.nfe, wall_s=time.perf_counter() - start), label,
                      directions=directions)


def _forward_sensitivities(func: Func, y0: Tensor, t: Tensor, loss: Loss, stiff: bool,
                           rtol: float, atol: float) -> _Gradients:
    """dL/d(y0, params) by SciPy forward sensitivities (odebench.reference), on the CPU."""
    from odebench.problems.base import Problem
    from odebench.reference import gradient

    start = time.perf_counter()
    if isinstance(func, nn.Module):
        func = func.to("cpu")
    named = named_parameters(func)
    flat_p = torch.cat([p.detach().reshape(-1) for _, p in named]) if named else y0.new_zeros(0)
    sizes = [p.numel() for _, p in named]
    nfe = 0

    def rhs(tt: Tensor, y: Tensor, p: Tensor) -> Tensor:
        nonlocal nfe
        nfe += 1
        if not named:
            return func(tt, y)
        values = {name: chunk.view(q.shape)
                  for (name, q), chunk in zip(named, torch.split(p, sizes), strict=True)}
        return torch.func.functional_call(func, values, (tt, y))

    problem = Problem(name="odebench.testing", rhs=rhs, y0=y0.cpu(), p=flat_p.cpu(),
                      t_eval=t.cpu(), stiff=stiff)
    ref = gradient(problem, loss, method="forward", rtol=rtol, atol=atol, cache=False)
    grads = {"y0": np.asarray(ref.dy0).reshape(tuple(y0.shape))}
    offset = 0
    for (name, p), size in zip(named, sizes, strict=True):
        grads[name] = np.asarray(ref.dp[offset: offset + size]).reshape(tuple(p.shape))
        offset += size
    label = f"SciPy {ref.method}, float64 on cpu, rtol={rtol:g}, atol={atol:g}"
    return _Gradients(grads, RunStats(nfe=nfe, wall_s=time.perf_counter() - start), label)


def _judge(cfg: _Config, gradient: str, reference: _Gradients, run: _Gradients,
           budget: float | None) -> GradientReport:
    shapes, errors = {}, {}
    for name, ref in reference.grads.items():
        mine = run.grads.get(name)
        along = reference.directions.get(name)
        shapes[name] = tuple(ref.shape if along is None else along.shape[1:])
        if mine is None or not np.all(np.isfinite(mine)):
            errors[name] = math.inf
            continue
        if along is not None:  # compare the derivatives along the reference's directions
            mine = along.reshape(len(along), -1) @ mine.reshape(-1)
        errors[name] = relative_l2(mine, ref)
    dtype = str(cfg.y0.dtype).removeprefix("torch.")
    if budget is None:
        budget = default_budget(cfg.rtol, cfg.y0.dtype)
        source = (f"default: max({BUDGET_RTOL_FACTOR:g} x rtol, {BUDGET_EPS_FACTOR:g} x "
                  f"eps({dtype}))")
    else:
        source = "given"
    return GradientReport(cfg.method, gradient, cfg.rtol, cfg.atol, dtype, str(cfg.y0.device),
                          cfg.reference, reference.label, float(budget), source, errors, shapes,
                          run.stats, reference.stats, run.error, REFERENCE_SCOPE[cfg.reference])


def check_gradient_methods(func: Func, y0: Tensor, t: Tensor, gradients: Sequence[str],
                           *, method: str = "dopri5", rtol: float = 1e-6, atol: float = 1e-8,
                           loss: Loss | None = None, reference: str = "auto",
                           budget: float | None = None, options: dict | None = None,
                           progress: Callable[[str], None] | None = None
                           ) -> list[GradientReport]:
    """:func:`check_gradients` for each of ``gradients``, sharing one reference computation."""
    unknown = [g for g in gradients if g not in odebench.GRADIENTS]
    if unknown:
        raise InvalidInputError(f"unknown gradient(s) {unknown}; valid gradients: "
                                f"{', '.join(odebench.GRADIENTS)}")
    if budget is not None and not (isinstance(budget, (int, float)) and 0 < budget < math.inf):
        raise InvalidInputError(f"budget must be a positive finite float, got {budget!r}")
    cfg = _config(func, y0, t, method, rtol, atol, loss, reference, options)
    if progress is not None:
        progress(f"reference gradient ({cfg.reference})")
    ref = _reference_gradients(cfg)
    reports = []
    for gradient in gradients:
        run_method = method_for(gradient, method)  # "reversible" brings its own solver
        if progress is not None:
            progress(f"{run_method} / {gradient}")
        run = _gradients_of(cfg.func, cfg.y0, cfg.t, cfg, run_method, gradient, cfg.rtol,
                            cfg.atol, cfg.options)
        reports.append(_judge(replace(cfg, method=run_method), gradient, ref, run,
                              budget))
    return reports


def check_gradients(func: Func, y0: Tensor, t: Tensor, *, method: str = "dopri5",
                    gradient: str = "backprop", rtol: float = 1e-6, atol: float = 1e-8,
                    loss: Loss | None = None, reference: str = "auto",
                    budget: float | None = None, options: dict | None = None) -> GradientReport:
    """Compare the gradients of one solver configuration with a float64 reference.

    Args:
        func: the vector field ``func(t, y) -> dy/dt``; an ``nn.Module``'s parameters that
            require grad are checked (a plain callable: only ``y0``).
        y0: initial state, any shape (batched included), float32 or float64, CPU or CUDA.
        t: 1-D output times (time units of ``func``).
        method, gradient, rtol, atol, options: the configuration, as in :func:`odebench.solve`.
        loss: ``loss(ys) -> scalar`` of the solution ``[len(t), *y0.shape]``; default
            :func:`projection_loss`.
        reference: "auto", "directional", "fd", "checkpointed" or "forward" (see the module
            docstring).
        budget: largest allowed relative L2 error per gradient tensor; default
            :func:`default_budget`.

    Returns:
        A :class:`GradientReport`; ``.ok`` tells the verdict, ``str()`` shows the table. A run
        stopped by a typed odebench error is reported (not ok), not raised.

    Raises:
        InvalidInputError for bad arguments; RuntimeError (checkpointed) or the solver's typed
        error (fd, forward) when the reference itself fails: then nothing can be judged.
    """
    return check_gradient_methods(func, y0, t, [gradient], method=method, rtol=rtol, atol=atol,
                                  loss=loss, reference=reference, budget=budget,
                                  options=options)[0]


def assert_gradients_close(func: Func, y0: Tensor, t: Tensor, *, method: str = "dopri5",
                           gradient: str = "backprop", rtol: float = 1e-6, atol: float = 1e-8,
                           loss: Loss | None = None, reference: str = "auto",
                           budget: float | None = None,
                           options: dict | None = None) -> GradientReport:
    """:func:`check_gradients`, raising ``AssertionError(str(report))`` when it is not ok.

    Returns the report when it is.
    """
    report = check_gradients(func, y0, t, method=method, gradient=gradient, rtol=rtol,
                             atol=atol, loss=loss, reference=reference, budget=budget,
                             options=options)
    if not report.ok:
        raise AssertionError(str(report))
    return report


def load_factory(spec: str) -> Callable[[], tuple]:
    """The factory named ``"package.module:function"``; the working directory is put on
    ``sys.path`` first (as ``python -m`` would), so a repository's own packages import."""
    module_name, sep, attr = spec.partition(":")
    if not (sep and module_name and attr):
        raise InvalidInputError(f"--model must be MODULE:FACTORY, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InvalidInputError(f"cannot import module {module_name!r} of --model: {err}") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InvalidInputError(f"{module_name!r} has no callable {attr!r} (--model {spec})")
    return factory


def check_model(spec: str, gradients: Sequence[str] | None = None,
                progress: Callable[[str], None] | None = None) -> list[GradientReport]:
    """Check the model a factory builds: ``factory()`` returns ``(func, y0, t)`` or
    ``(func, y0, t, settings)``; ``settings`` may hold the keys of :data:`SETTINGS_KEYS`
    (``gradients``: the methods to check when ``gradients`` is not given; default all)."""
    built = load_factory(spec)()
    if not (isinstance(built, tuple) and len(built) in (3, 4)):
        raise InvalidInputError(f"{spec} must return (func, y0, t) or (func, y0, t, settings), "
                                f"got {type(built).__name__}")
    func, y0, t, *rest = built
    settings = dict(rest[0]) if rest else {}
    unknown = sorted(set(settings) - set(SETTINGS_KEYS))
    if unknown:
        raise InvalidInputError(f"unknown setting(s) {unknown} from {spec}; valid keys: "
                                f"{', '.join(SETTINGS_KEYS)}")
    from_settings = settings.pop("gradients", None)
    chosen = tuple(gradients or from_settings or odebench.GRADIENTS)
    return check_gradient_methods(func, y0, t, chosen, progress=progress, **settings)


def format_summary(reports: Sequence[GradientReport], title: str) -> str:
    """One line per report, then the full report of each breach."""
    header = (f"{'gradient':<14} {'worst tensor':<24} {'rel. L2 error':>13} {'budget':>10} "
              f"{'NFE fwd':>8} {'NFE bwd':>8} {'saved MiB':>9} {'recon':>9}  verdict")
    lines = [f"{title}: {reports[0].method}, {reports[0].dtype} on {reports[0].device}, "
             f"rtol={reports[0].rtol:g}, atol={reports[0].atol:g}; reference "
             f"{reports[0].reference} ({reports[0].reference_settings})",
             f"the reference is {reports[0].reference_scope}", header,
             "-" * len(header)]
    for r in reports:
        recon = "" if r.run.recon_error is None else f"{r.run.recon_error:.2e}"
        verdict = "ok" if r.ok else ("BREACH (stopped)" if r.stopped else "BREACH")
        lines.append(f"{r.gradient:<14} {r.worst:<24} {r.worst_error:>13.3e} {r.budget:>10.2e} "
                     f"{r.run.nfe:>8} {r.run.nfe_backward:>8} "
                     f"{r.run.saved_bytes / 2**20:>9.3f} {recon:>9}  {verdict}")
    breaches = [r for r in reports if not r.ok]
    lines.append(f"{len(breaches)} breach(es); gate {'FAILED' if breaches else 'PASSED'}")
    lines += ["\n" + str(r) for r in breaches]
    return "\n".join(lines)


def write_json(reports: Sequence[GradientReport], path: Path, model: str) -> None:
    """Write ``{"ok", "model", "reports": [...]}`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"ok": all(r.ok for r in reports), "model": model,
            "reports": [r.to_json() for r in reports]}
    path.write_text(json.dumps(data, indent=2, default=float))

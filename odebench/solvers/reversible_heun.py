"""The reversible Heun method (Kidger, Foster, Li & Lyons, "Efficient and accurate gradients for
neural SDEs", NeurIPS 2021, Section 3, Algorithm 1; the ODE case, without the noise term).

The state is a pair ``(y, yhat)`` with ``yhat_0 = y_0``, and ``fhat = f(t, yhat)`` is carried
from step to step (one evaluation per step)::

    yhat_{n+1} = 2 y_n - yhat_n + h f(t_n, yhat_n)
    y_{n+1}    = y_n + h/2 (f(t_n, yhat_n) + f(t_{n+1}, yhat_{n+1}))

The step is algebraically reversible: from ``(y_{n+1}, yhat_{n+1}, fhat_{n+1})``,
``yhat_n = 2 y_{n+1} - yhat_{n+1} - h fhat_{n+1}`` and ``y_n = y_{n+1} - h/2 (f(t_n, yhat_n) +
fhat_{n+1})`` recover the previous state up to round-off (:func:`reverse_step`), which the
``reversible`` gradient uses to backpropagate in O(1) memory in the number of steps.

Second order. Its linear stability region is only the imaginary segment [-i, i] of h*lambda
(measured in tests/test_reversible.py): with any real lambda < 0 the parasitic root grows as
e^{|lambda| t} at every step size; a run whose final ``|yhat - y|`` shows that
(:func:`check_parasitic`) raises NonFiniteError instead of returning the state.

Fixed steps with ``options={"step_size": h}`` (each output
time is a step end); otherwise adaptive with the error estimate ``h/2 (f(yhat_{n+1}) -
f(yhat_n))`` (Heun against Euler, first order, as diffrax's ReversibleHeun), the PI controller
of the other methods and steps shortened to land on every output time (no dense output).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from odebench.errors import NonFiniteError
from odebench.solution import Stats
from odebench.solvers.control import PIController, initial_step
from odebench.solvers.func import FlatField
from odebench.solvers.loop import Integration, StepLoop, fixed_steps
from odebench.solvers.options import SolverOptions

NAME = "reversible_heun"
ORDER = 2
ERROR_ORDER = 1


@dataclass(frozen=True)
class ReversibleHeun:
    """The method as :class:`odebench.solvers.Scheme` holds it (no coefficients to compile)."""

    name: str = NAME


@dataclass(frozen=True)
class Step:
    """One accepted step from ``t`` to ``t1`` (``h = t1 - t``, signed, time units); ``out`` is
    the index of the output time it ends on, if any."""

    t: float
    t1: float
    out: int | None

    @property
    def h(self) -> float:
        return self.t1 - self.t


@dataclass
class HeunState:
    """``(y, yhat, fhat = f(t, yhat))``, each flat [N]."""

    y: torch.Tensor
    yhat: torch.Tensor
    fhat: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        return [self.y, self.yhat, self.fhat]


@dataclass
class HeunRun:
    """A forward run: outputs (flat [N] each), the final state, the accepted steps, and the
    next step size (adaptive) or the last one."""

    ys: list[torch.Tensor]
    final: HeunState
    steps: list[Step]
    h_next: float


def forward_step(f: FlatField, step: Step, s: HeunState) -> HeunState:
    """The state at ``step.t1`` from ``s`` at ``step.t`` (one evaluation of ``f``)."""
    h = step.h
    yhat1 = torch.add(2.0 * s.y - s.yhat, s.fhat, alpha=h)
    f1 = f(step.t1, yhat1)
    y1 = torch.add(s.y, s.fhat + f1, alpha=0.5 * h)
    return HeunState(y1, yhat1, f1)


def reverse_step(f: FlatField, step: Step, s1: HeunState) -> HeunState:
    """The inverse of :func:`forward_step`: the state at ``step.t`` from ``s1`` at ``step.t1``
    (one evaluation of ``f``)."""
    h = step.h
    yhat0 = torch.add(2.0 * s1.y - s1.yhat, s1.fhat, alpha=-h)
    f0 = f(step.t, yhat0)
    y0 = torch.add(s1.y, f0 + s1.fhat, alpha=-0.5 * h)
    return HeunState(y0, yhat0, f0)


def fixed_plan(ts: list[float], step_size: float | None) -> list[Step]:
    """The steps of a fixed-step run through the output times ``ts`` (one per output interval
    when ``step_size`` is None); recomputed, not stored, by the backward pass."""
    plan = []
    for i, (t_start, t_stop) in enumerate(zip(ts[:-1], ts[1:]), start=1):
        for t, h, lands in fixed_steps(t_start, t_stop, step_size):
            plan.append(Step(t, t_stop if lands else t + h, i if lands else None))
    return plan


PARASITIC_LIMIT = 1.0
"""Largest ``|yhat - y| / max(|y|, |y0|)`` at the end of a run: beyond it the parasitic mode has
taken over. A guard against gross blow-up, not an accuracy test: ``yhat`` can stray further
than ``y`` (measured at h = 1e-3: 1.3e-2 on Lotka-Volterra with y itself 1.5e-5 from the
reference, 2e-8 on the small MLP; 1.04 on Lotka-Volterra at h = 1e-2, where y is 22% wrong)."""


def check_parasitic(s: HeunState, y0: torch.Tensor, t: float, h: float) -> None:
    """Raise NonFiniteError when the final ``yhat`` and ``y`` differ by more than
    ``PARASITIC_LIMIT`` relative: outside the stability region the parasitic mode grows as
    e^{|lambda| t} at every step size, so the state is no solution (fixed steps would return it
    silently; the adaptive error estimate shrinks h until the step budget runs out)."""
    with torch.no_grad():
        gap = float(torch.linalg.vector_norm(s.yhat - s.y))
        scale = max(float(torch.linalg.vector_norm(s.y)), float(torch.linalg.vector_norm(y0)))
    if not gap <= PARASITIC_LIMIT * scale:
        raise NonFiniteError(
            f"method '{NAME}' is unstable here: at t={t:.6g} |yhat - y| = {gap:.3g} against "
            f"|y| = {scale:.3g} (step {abs(h):.3g}); its stability region is the imaginary "
            f"segment [-i, i] of h*lambda, so a Jacobian eigenvalue with a negative real part "
            f"(dissipation, stiffness) makes its parasitic mode grow at any step size. Use "
            f"another method.")


def run(f: FlatField, y0: torch.Tensor, ts: list[float], stats: Stats, opts: SolverOptions,
        rtol: float, atol: float, max_steps: int, first_step: float | None = None,
        norm_numel: int | None = None) -> HeunRun:
    """Integrate from the flat ``y0`` [N] through the output times ``ts`` (strictly monotone
    Python floats): fixed steps when ``opts.step_size`` is set, else adaptive (error norm
    ``RMS(err / (atol + rtol max(|y_n|, |y_n+1|)))`` over the first ``norm_numel`` entries)."""
    loop = StepLoop(f, ts, y0, stats, max_steps, NAME)
    s = HeunState(y0, y0, f(ts[0], y0))
    if opts.step_size is not None:
        plan = fixed_plan(ts, opts.step_size)
        for step in plan:
            loop.budget(step.t, step.h)
            s = forward_step(f, step, s)
            stats.n_steps += 1
            if step.out is not None:
                loop.outputs.append(s.y)
        loop.check_finite_fixed(plan[-1].h)
        check_parasitic(s, y0, ts[-1], plan[-1].h)
        stats.nfe = f.nfe
        return HeunRun(loop.outputs, s, plan, plan[-1].h)
    return _adaptive(loop, f, s, ts, stats, opts, rtol, atol, first_step, norm_numel)


def _adaptive(loop: StepLoop, f: FlatField, s: HeunState, ts: list[float], stats: Stats,
              opts: SolverOptions, rtol: float, atol: float, first_step: float | None,
              norm_numel: int | None) -> HeunRun:
    n = norm_numel if norm_numel is not None else s.y.numel()
    direction = 1.0 if ts[-1] > ts[0] else -1.0
    interval = abs(ts[-1] - ts[0])
    t = ts[0]
    h_abs = (first_step if first_step is not None else
             initial_step(f, t, s.y, s.fhat, ERROR_ORDER, rtol, atol, direction, interval,
                          norm_numel))
    h_abs = min(h_abs, opts.max_step, interval)
    controller = PIController(k=ERROR_ORDER + 1)
    quiet = torch.no_grad() if torch.is_grad_enabled() else contextlib.nullcontext()
    steps: list[Step] = []
    while not loop.done:
        loop.check_underflow(t, h_abs, direction)
        target = ts[loop.next_out]
        landing = direction * (t + direction * h_abs - target) >= 0
        step = Step(t, target if landing else t + direction * h_abs, None)
        loop.budget(t, step.h)
        s1 = forward_step(f, step, s)
        with quiet:
            scale = torch.maximum(s.y[:n].abs(), s1.y[:n].abs()).add_(atol / rtol)
            diff = (s1.fhat[:n] - s.fhat[:n]).div_(scale)
            err = 0.5 * abs(step.h) / (rtol * math.sqrt(n)) * float(torch.linalg.vector_norm(diff))
        if not err <= 1.0:
            h_abs = loop.reject(t, step.h, err, controller)
            continue
        out_first, _, exact = loop.accept(t, step.h, step.t1)
        if exact:
            step = Step(step.t, step.t1, out_first)
            loop.outputs.append(s1.y)
        steps.append(step)
        h_abs = min(abs(step.h) * controller.accept_factor(err), opts.max_step)
        if landing:
            h_abs = max(h_abs, abs(step.h))
        t, s = step.t1, s1
    check_parasitic(s, loop.outputs[0], t, h_abs)
    stats.nfe = f.nfe
    return HeunRun(loop.outputs, s, steps, h_abs)


def integrate_reversible_heun(f: FlatField, y0: torch.Tensor, ts: list[float], stats: Stats,
                              opts: SolverOptions, rtol: float, atol: float, max_steps: int,
                              first_step: float | None = None,
                              norm_numel: int | None = None) -> Integration:
    """:func:`run` as :func:`odebench.solvers.integrate` returns it (the ``backprop``,
    ``backsolve`` and ``forward`` gradients differentiate through or around it as through any
    method)."""
    result = run(f, y0, ts, stats, opts, rtol, atol, max_steps, first_step, norm_numel)
    return Integration(ys=result.ys, h_next=result.h_next)

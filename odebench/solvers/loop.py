"""The one integration loop, :func:`integrate`, that runs every method (explicit and implicit,
fixed and adaptive), and its bookkeeping (:class:`StepLoop`): outputs collected so far, the step
budget, step-size underflow, the output times a step passes, and the failures that carry the
partial solution reached (:class:`PartialSolution`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from odebench.errors import MaxStepsExceededError, NonFiniteError, StepSizeUnderflowError
from odebench.solution import PartialSolution, Stats
from odebench.solvers.control import Controller, PIController, fixed_steps
from odebench.solvers.func import FlatField, all_finite
from odebench.solvers.method import Method
from odebench.solvers.norm import ErrorNorm


@dataclass
class StepRecord:
    """One accepted step, as the ``interpolated`` and ``checkpointed`` gradients keep it.

    Attributes:
        t, h: start and signed size of the step (time units).
        y: flat state at ``t``, shape [N].
        dense_info: the method's data for :meth:`Method.dense` (its stages, extra dense stages
            included when computed), or None once dropped.
        out_first: index (into the output times) of the first output inside (t, t+h].
        thetas: fractions of ``h`` of the off-grid outputs in the step, in order.
        exact: whether the step ends exactly on an output time (it is the last output of the step).
    """

    t: float
    h: float
    y: torch.Tensor
    dense_info: Any = None
    out_first: int = 0
    thetas: list[float] = field(default_factory=list)
    exact: bool = False

    @property
    def ks(self) -> list[torch.Tensor] | None:
        """The step's stages, each [N] (None when dropped); setting None drops the dense data."""
        return None if self.dense_info is None else self.dense_info.ks

    @ks.setter
    def ks(self, value: None) -> None:
        if value is not None:
            raise ValueError("StepRecord.ks can only be dropped (set to None)")
        self.dense_info = None


@dataclass
class Integration:
    """What a loop returns: the flat states at the output times and the next step size."""

    ys: list[torch.Tensor]
    h_next: float


Observer = Callable[[StepRecord], None]


class StepLoop:
    """Outputs, budget and failures of one integration through the output times ``ts``.

    Args:
        f: the flat vector field (its ``nfe`` is copied into ``stats`` on failure).
        ts: output times, Python floats, strictly monotone; ``ts[0]`` is the start.
        y0: flat initial state [N] (the first output).
        stats: counters, updated by the caller.
        max_steps: budget of attempted steps.
        method: the method's name, for messages.
        implicit: whether the method is implicit (no "try an implicit method" hint then).
    """

    def __init__(self, f: FlatField, ts: list[float], y0: torch.Tensor, stats: Stats,
                 max_steps: int, method: str, implicit: bool = False):
        self.f, self.ts, self.stats = f, ts, stats
        self.outputs: list[torch.Tensor] = [y0]
        self.max_steps = max_steps
        self.attempts = 0
        self.method = method
        self.implicit = implicit
        self.next_out = 1
        self.nonfinite_streak = 0  # consecutive rejections with a non-finite error estimate
        self.eps = torch.finfo(y0.dtype).eps
        self.tiny = torch.finfo(y0.dtype).tiny

    @property
    def done(self) -> bool:
        return self.next_out >= len(self.ts)

    def partial(self, t: float, h: float) -> PartialSolution:
        self.stats.nfe = self.f.nfe
        m = len(self.outputs)
        ys = torch.stack([o.detach() for o in self.outputs]).view(m, *self.f.shape)
        return PartialSolution(ts=torch.tensor(self.ts[:m]), ys=ys, stats=self.stats,
                               t_reached=t, h_last=h)

    def budget(self, t: float, h: float) -> None:
        """Count one attempted step; raise MaxStepsExceededError past ``max_steps``."""
        self.attempts += 1
        if self.attempts > self.max_steps:
            self._over_budget(t, h)

    def _over_budget(self, t: float, h: float) -> None:
        span = abs(self.ts[-1] - self.ts[0])
        mean_h = abs(t - self.ts[0]) / max(self.stats.n_steps, 1)
        hint = ""
        if mean_h < 1e-3 * span:
            hint = f" The mean accepted step {mean_h:.3g} is tiny against the interval {span:.3g}"
            hint += (": the problem may be stiff; try an implicit method (odebench.STIFF_METHODS)."
                     if not self.implicit else
                     "; raise max_num_steps or loosen the tolerances.")
        raise MaxStepsExceededError(
            f"max_num_steps={self.max_steps} exceeded by method '{self.method}' at "
            f"t={t:.10g} (last step size {h:.3g}, {self.stats.n_steps} accepted, "
            f"{self.stats.n_rejected} rejected, integrating from {self.ts[0]:.6g} to "
            f"{self.ts[-1]:.6g}).{hint}",
            partial=self.partial(t, h),
        )

    def check_underflow(self, t: float, h_abs: float, direction: float) -> None:
        """Raise when ``h_abs`` is below the time resolution at ``t`` (10 ulp of |t|)."""
        if h_abs >= 10 * self.eps * max(abs(t), self.tiny):
            return
        nonfinite = self.nonfinite_streak > 0
        cls = NonFiniteError if nonfinite else StepSizeUnderflowError
        raise cls(
            f"step size underflow at t={t:.10g} with method '{self.method}': step "
            f"{h_abs:.3g} is below the time resolution"
            + (" (the state became non-finite)" if nonfinite else "")
            + "; the solution may blow up there, or the problem is "
            + ("singular" if self.implicit else "stiff or singular"),
            partial=self.partial(t, direction * h_abs),
        )

    def reject(self, t: float, h: float, err: float,
               controller: PIController | None = None) -> float:
        """Count a rejected step of signed size ``h`` with error ratio ``err``; returns the next
        |h| by ``controller`` (a loop of its own), else |h| times the smallest factor (the one
        loop's controller object adapts |h| itself). After 30 consecutive non-finite error
        estimates: NonFiniteError."""
        self.stats.n_rejected += 1
        self.nonfinite_streak = self.nonfinite_streak + 1 if not math.isfinite(err) else 0
        h_abs = abs(h) * (controller.reject_factor(err) if controller is not None
                          else PIController.min_factor)
        if self.nonfinite_streak >= 30:
            raise NonFiniteError(
                f"the state became non-finite at t={t:.10g} with method '{self.method}'; "
                f"{self.nonfinite_streak} step-size reductions down to {h_abs:.3g} did not help",
                partial=self.partial(t, math.copysign(h_abs, h)),
            )
        return h_abs

    def accept(self, t: float, h: float, t_new: float) -> tuple[int, list[float], bool]:
        """Count an accepted step from ``t`` to ``t_new`` and return the outputs it passes
        (see :meth:`passed_outputs`)."""
        self.nonfinite_streak = 0
        self.stats.n_steps += 1
        return self.passed_outputs(t, h, t_new)

    def passed_outputs(self, t: float, h: float, t_new: float) -> tuple[int, list[float], bool]:
        """The output times in (t, t_new] of an accepted step: (index of the first, fractions
        theta = (t_out - t) / h of those strictly inside, whether t_new itself is one)."""
        direction = 1.0 if h > 0 else -1.0
        first, thetas, exact = self.next_out, [], False
        while self.next_out < len(self.ts) and direction * (self.ts[self.next_out] - t_new) <= 0:
            if self.ts[self.next_out] == t_new:
                exact = True
            else:
                thetas.append((self.ts[self.next_out] - t) / h)
            self.next_out += 1
        return first, thetas, exact

    def check_finite_fixed(self, h: float) -> None:
        """After a fixed-step run: raise NonFiniteError at the first non-finite output."""
        final = torch.stack([o.detach() for o in self.outputs])
        if all_finite(final):
            return
        bad = int((~torch.isfinite(final)).flatten(1).any(1).nonzero()[0, 0])
        self.outputs = self.outputs[:bad]
        raise NonFiniteError(
            f"the state became non-finite with fixed-step method '{self.method}' before the "
            f"output time t={self.ts[bad]:.6g} (step size {abs(h):.3g}); reduce step_size",
            partial=self.partial(self.ts[bad - 1], h),
        )


def integrate(method: Method, f: FlatField, y0: torch.Tensor, ts: list[float],
              controller: Controller, norm: ErrorNorm, budget: int, stats: Stats,
              observer: Observer | None = None, dense_stages: bool = False,
              jac: Callable | None = None) -> Integration:
    """Integrate the flat field ``f`` [N] -> [N] with ``method`` from ``y0`` through the output
    times ``ts`` (strictly monotone Python floats; ``ts[0]`` is the start).

    The controller proposes each step; adaptive steps are accepted when ``norm``'s error ratio
    is <= 1 (``norm.n`` first entries measured) and the off-grid outputs come from the method's
    dense output; fixed steps land on every output time and are checked for non-finite values at
    the end. ``budget`` bounds the attempted steps; ``observer`` gets every accepted step;
    ``dense_stages``: evaluate what the dense output needs for every accepted step (for an
    observer that interpolates later), not only for steps with an output inside; ``jac``: the
    user's df/dy for implicit methods. ``stats`` is updated in place.
    """
    loop = StepLoop(f, ts, y0, stats, budget, method.name, implicit=method.implicit)
    state = method.init(f, ts[0], y0, stats, keeps_stages=observer is not None, jac=jac)
    controller.init(f, ts[0], y0, method.slope(state), method.error_order, ts)
    checked = method.adaptive and not controller.fixed
    direction = 1.0 if ts[-1] > ts[0] else -1.0
    n = norm.n
    whole = n == y0.numel()
    # one reusable context for the per-step error estimate (nothing to switch off when the
    # solve records no graph)
    quiet = torch.no_grad() if torch.is_grad_enabled() else contextlib.nullcontext()
    complete = dense_stages and observer is not None
    t, y = ts[0], y0
    if checked:
        with quiet:
            ay = (y if whole else y[:n]).abs()
    err = 0.0
    while not loop.done:
        if checked:
            loop.check_underflow(t, controller.h_next, direction)
        h, t_new = controller.propose(t)
        loop.budget(t, h)
        res = method.step(f, t, y, h, state)
        if checked:
            with quiet:
                ay1 = (res.y1 if whole else res.y1[:n]).abs()
                err = norm.ratio(*method.error(res.dense_info, n), ay, ay1)
            if not err <= 1.0:
                loop.reject(t, h, err)
                controller.adapt(False, err, h)
                continue
        out_first, thetas, exact = loop.accept(t, h, t_new)
        if thetas or complete:
            method.prepare_dense(f, res.dense_info)
        if thetas:
            loop.outputs.extend(method.dense(res.dense_info, thetas).unbind(0))
        if exact:
            loop.outputs.append(res.y1)
        if observer is not None:
            observer(StepRecord(t=t, h=h, y=y, dense_info=res.dense_info, out_first=out_first,
                                thetas=thetas, exact=exact))
        controller.adapt(True, err, h)
        t, y, state = t_new, res.y1, res.state
        if checked:
            ay = ay1
    if controller.fixed:
        loop.check_finite_fixed(controller.h_next)
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=controller.h_next)


# fixed_steps lives in control.py now; re-exported for loops outside the package
__all__ = ["Integration", "Observer", "StepLoop", "StepRecord", "fixed_steps", "integrate"]

"""Early stiffness detection for the explicit adaptive methods.

A stiff problem under an explicit method does not fail: it crawls, with steps held at the edge
of the method's stability region, until the step budget runs out (ROBER under dopri5: 100,000
steps, over a minute; with autograd recording, gigabytes of graph). The monitor here watches the
vector field's evaluations, not the step loop: every ``CHECK_EVERY`` evaluations it reads the time
reached and computes

* the mean progress per attempted step since the last check, ``h`` (time units);
* the projected attempts ``n_done + |t_end - t| / h``;
* the decay rate ``|lambda| = -Re(lambda)`` of the Jacobian's dominant mode at the current
  state, by 8 power iterations of finite-difference Jacobian-vector products and a Rayleigh
  quotient (9 evaluations, no graph).

When the projection exceeds the budget ``max_num_steps`` *and* ``h |lambda|`` exceeds half the
method's real stability interval (computed from its tableau: bosh3 2.51, dopri5 3.31, tsit5
3.51, dop853 6.39; the steps are then held by stability, not accuracy) at ``CONSECUTIVE`` checks
in a row, the solve stops with :class:`MaxStepsExceededError` and the hint to use an implicit
method. It does so only while under a quarter of the budget is spent: past that the budget's own
error, with the partial solution at the output times, comes soon enough. This is the spirit of
Hairer's test in dopri5.f (``h |lambda| > 3.25`` on 15 accepted steps; Hairer & Wanner, Solving
ODEs II, IV.2), without reading the stages. A non-stiff solve that fits its budget is never
stopped: its projection stays under the budget.
The error's ``partial`` holds the start only (the monitor does not see the outputs), the time
reached and the mean step. ``options={"stiffness_check": False}`` turns the monitor off.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from odebench.errors import MaxStepsExceededError
from odebench.gradients.base import OdeCall
from odebench.solution import PartialSolution, Stats
from odebench.solvers.tableaus import TABLEAUS

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

CHECK_EVERY = 2000
"""Evaluations between two checks (a check costs 8 more)."""
CONSECUTIVE = 3
"""Checks in a row that must find the solve stiff and over budget."""
POWER_ITERATIONS = 8


def applies(call: OdeCall) -> bool:
    """Whether ``call`` runs an explicit adaptive method with the monitor on."""
    sch = call.scheme
    return (not sch.implicit and not sch.reversible and sch.adaptive
            and call.opts.step_size is None
            and call.opts.stiffness_check)


@functools.cache
def real_stability_bound(method: str) -> float:
    """The length of the real stability interval of an explicit tableau: the smallest
    ``x > 0`` with ``|R(-x)| > 1``, ``R(z) = 1 + z b^T (I - z A)^-1 1`` (scanned in steps of 1e-3;
    dopri5: 3.307, Hairer & Wanner II, IV.2 quote 3.3)."""
    tab = TABLEAUS[method]
    a, b = np.asarray(tab.a, dtype=float), np.asarray(tab.b, dtype=float)
    ones, eye = np.ones(len(b)), np.eye(len(b))
    k = 1
    while abs(1 - k * 1e-3 * b @ np.linalg.solve(eye + k * 1e-3 * a, ones)) <= 1 and k < 100_000:
        k += 1
    return k * 1e-3


class StiffnessMonitor:
    """Wraps ``call.func``; :meth:`func` is the monitored field. ``extra_nfe``: evaluations the
    checks made (not counted by the solver); ``products``: the ``h |lambda|`` of every check that
    found the budget projected to run out (the verdicts' evidence)."""

    def __init__(self, call: OdeCall, stats: Stats):
        self.call, self.stats = call, stats
        tab = call.scheme.compiled.tab
        self.evals_per_attempt = tab.stages - (1 if tab.fsal else 0)
        self.t_start, self.t_end = call.ts[0], call.ts[-1]
        self.count = 0
        self.extra_nfe = 0
        self.last_t, self.last_count = self.t_start, 0
        self.streak = 0
        self.watching = True
        self.products: list[float] = []
        self.threshold = 0.5 * real_stability_bound(call.scheme.name)

    def func(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.watching:
            self.count += 1
            if self.count % CHECK_EVERY == 0:
                self._check(t, y)
        return self.call.func(t, y)

    def finish(self) -> None:
        """The forward pass is over: stop watching (a backward pass evaluates the same func) and
        add the checks' evaluations to ``stats.nfe``."""
        self.watching = False
        self.stats.nfe += self.extra_nfe

    def _check(self, t: torch.Tensor, y: torch.Tensor) -> None:
        t_now = float(t)
        attempts = (self.count - self.last_count) / self.evals_per_attempt
        h = abs(t_now - self.last_t) / attempts
        self.last_t, self.last_count = t_now, self.count
        remaining = abs(self.t_end - t_now)
        done = self.count / self.evals_per_attempt
        budget = self.call.opts.max_num_steps
        if h > 0 and done + remaining / h <= budget:
            self.streak = 0
            return
        rate = self._dominant_rate(t, y)
        self.products.append(h * rate)
        if not (h * rate > self.threshold):
            self.streak = 0
            return
        self.streak += 1
        if self.streak < CONSECUTIVE or done > budget / 4:
            return
        projected = math.inf if h == 0 else done + remaining / h
        self.stats.nfe = self.count + self.extra_nfe
        raise MaxStepsExceededError(
            f"stiffness detected by method '{self.call.scheme.name}' at t={t_now:.10g}: the "
            f"mean step {h:.3g} is held by stability (decay rate -Re(lambda) ~ {rate:.3g}, "
            f"h |lambda| ~ {h * rate:.3g}), and at this rate integrating to {self.t_end:.6g} "
            f"needs ~{projected:.3g} steps, beyond max_num_steps={budget}: the problem may be "
            "stiff; try an implicit method (odebench.STIFF_METHODS), or options="
            "{'stiffness_check': False} to run on.",
            partial=PartialSolution(ts=torch.tensor(self.call.ts[:1]),
                                    ys=self.call.y0.detach().unsqueeze(0), stats=self.stats,
                                    t_reached=t_now, h_last=h))

    def _dominant_rate(self, t: torch.Tensor, y: torch.Tensor) -> float:
        """The decay rate ``-Re(lambda)`` of the dominant mode of df/dy at (t, y): power iteration
        on finite-difference products ``J v``, then the Rayleigh quotient ``-v.Jv / v.v`` (large
        for a fast decaying mode, small for a fast rotation, which does not restrict a step to
        the real stability interval). 0 when the estimate is not finite or not positive."""
        func = self.call.func
        root_eps = math.sqrt(torch.finfo(y.dtype).eps)
        with torch.no_grad():
            y = y.detach()
            f0 = func(t, y)
            scale = max(float(torch.linalg.vector_norm(y)), 1.0)
            v = f0 + torch.linspace(1.0, 2.0, y.numel(), dtype=y.dtype,
                                    device=y.device).view(y.shape)
            rate = 0.0
            for _ in range(POWER_ITERATIONS):
                norm = float(torch.linalg.vector_norm(v))
                if not (norm > 0 and math.isfinite(norm)):
                    break
                v = v / norm
                jv = (func(t, y + root_eps * scale * v) - f0) / (root_eps * scale)
                rate = -float((v * jv).sum())
                v = jv
        self.extra_nfe += POWER_ITERATIONS + 1
        return rate if math.isfinite(rate) and rate > 0 else 0.0

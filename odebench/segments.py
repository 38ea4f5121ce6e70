"""A solve split into pieces at ``step_t``/``jump_t`` points, with one-sided times at the joins.

torchdiffeq's options ``step_t`` (times steps must end on), ``jump_t`` (discontinuities of
``func`` in t, where the solver restarts) and ``perturb`` (one-sided times at the ends of each
interval) are implemented without the step loop's help: the integration is cut at those points
into pieces, each piece a complete solve with the chosen gradient method, chained through its
end state (the gradients flow through the joins). Each piece starts afresh (Hairer's initial step,
the first stage evaluated anew), so a step never straddles a join; the states at the joins that
are not output times are dropped. ``max_num_steps`` is the budget of the whole solve: each piece
gets what is left of it (at least one step; the error message names the piece's remainder).
``func`` is evaluated at ``nextafter(t, inside)`` at the ends of a piece that are ``jump_t``
points, and at the ends of every piece with ``perturb=True`` (then every output time is a join
too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from odebench import stiffness
from odebench.gradients import GRADIENTS
from odebench.gradients.base import OdeCall
from odebench.solution import Stats
from odebench.stiffness import StiffnessMonitor

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradient_solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Run ``call`` with its gradient method, or plain backprop when nothing is differentiated,
    watched by the stiffness monitor (explicit adaptive methods); returns ys
    [len(call.ts), *shape]."""
    needs_grad = torch.is_grad_enabled() and (
        call.y0.requires_grad or any(p.requires_grad for p in call.params))
    gradient = call.gradient if needs_grad else "backprop"
    # forward sensitivities substitute the module's parameters (functional_call): its field
    # must stay the user's module, so the monitor's wrapper does not watch it
    watched = stiffness.applies(call) and gradient != "forward"
    monitor = StiffnessMonitor(call, stats) if watched else None
    if monitor is not None:
        call = dataclasses.replace(call, func=monitor.func)
    ys = GRADIENTS[gradient](call, stats)
    if monitor is not None:
        monitor.finish()
    return ys


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Solve ``call`` (split into pieces when its options ask for it); returns ys [T, *shape]."""
    opts = call.opts
    if opts.dtype is not None:
        call = dataclasses.replace(call, func=_time_dtype(call.func, opts.dtype))
    if not (opts.step_t or opts.jump_t or opts.perturb):
        return gradient_solve(call, stats)
    joins, jumps = _joins(call)
    ys = [call.y0]
    y = call.y0
    for a, b in zip(joins[:-1], joins[1:]):
        direction = 1.0 if b > a else -1.0
        inside = [x for x in call.ts if direction * (x - a) > 0 and direction * (b - x) > 0]
        ts = [a, *inside, b]
        nudge = (opts.perturb or a in jumps, opts.perturb or b in jumps)
        func = _one_sided(call.func, a, b, *nudge) if any(nudge) else call.func
        used = stats.n_steps + stats.n_rejected  # the budget is the whole solve's
        budget = dataclasses.replace(opts, max_num_steps=max(opts.max_num_steps - used, 1))
        piece = dataclasses.replace(call, func=func, y0=y, ts=ts, opts=budget)
        out = gradient_solve(piece, _PieceStats(stats))
        ys.extend(out[1:-1])
        if b in call.ts:
            ys.append(out[-1])
        y = out[-1]
    return torch.stack(ys)


def _joins(call: OdeCall) -> tuple[list[float], set[float]]:
    """The ends of the pieces in integration order (first and last output included), and the
    ``jump_t`` points among them."""
    t0, t1 = call.ts[0], call.ts[-1]
    lo, hi = min(t0, t1), max(t0, t1)
    step_t, jump_t = call.opts.step_t or (), call.opts.jump_t or ()
    jumps = {x for x in jump_t if lo < x < hi}
    points = {x for x in step_t if lo < x < hi} | jumps | {t0, t1}
    if call.opts.perturb:
        points |= set(call.ts)
    return sorted(points, reverse=t1 < t0), jumps


def _one_sided(func: Func, a: float, b: float, at_start: bool, at_end: bool) -> Func:
    """``func`` evaluated one ulp inside [a, b] at its ends (where asked): a time within 8 ulp of
    ``a`` becomes ``nextafter(t, towards b)``, one within 8 ulp of ``b`` ``nextafter(t, towards
    a)`` (torchdiffeq's Perturb.NEXT / Perturb.PREV)."""
    toward = 1.0 if b > a else -1.0

    def near(t: torch.Tensor, x: float) -> bool:
        return abs(float(t) - x) <= 8 * torch.finfo(t.dtype).eps * max(abs(x), 1.0)

    def nudged(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if at_start and near(t, a):
            t = torch.nextafter(t, t + toward)
        elif at_end and near(t, b):
            t = torch.nextafter(t, t - toward)
        return func(t, y)

    return nudged


def _time_dtype(func: Func, dtype: torch.dtype) -> Func:
    """``func`` receiving its time tensor in ``dtype`` (the ``dtype`` option)."""

    def cast(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return func(t.to(dtype), y)

    return cast


class _PieceStats(Stats):
    """One piece's counters: every change of a counter is added to the whole solve's ``total``
    (forward counters now, backward counters when ``.backward()`` fills them in); the largest
    ``recon_error`` of the pieces is the total's."""

    def __init__(self, total: Stats):
        object.__setattr__(self, "total", total)
        super().__init__()

    def __setattr__(self, name: str, value: object) -> None:
        old = getattr(self, name)
        object.__setattr__(self, name, value)
        total = self.total
        if name == "recon_error":
            if value is not None:
                setattr(total, name, max(value, total.recon_error or 0.0))
        elif isinstance(value, int):
            setattr(total, name, getattr(total, name) + value - old)

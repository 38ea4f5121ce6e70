"""``odeint_event``: integrate until an event function crosses zero (torchdiffeq's meaning),
with the event time differentiable.

The event is located without recording a graph, then differentiated: (1) integrate on windows of
doubling length (1, 2, 4, ... time units from ``t0``, each sampled at 33 points) until
``event_fn`` changes sign between two samples; (2) Brent's method on that bracket, each trial
time a solve from the bracket's left sample (so the root is that of the solver's own solution,
to 4 ulp of the time; the right sample when the refining solve does not confirm the sign
change there); (3) one differentiable solve from ``t0`` to the event time ``t*``.
An event crossed twice between two samples is not seen.

Gradients (implicit function theorem, as torchdiffeq): ``g(t*(theta), y(t*(theta); theta),
theta) = 0`` gives ``dt*/dtheta = -(dg/dy . dy/dtheta + dg/dtheta) / (dg/dy . f + dg/dt)``; it
is carried by zero-valued correction terms: ``t* - (g - sg(g)) / sg(D)`` with ``D`` the total
time derivative of ``g`` at the event, and the final state ``y(t*) + (t* - sg(t*)) sg(f(t*, y))``
(``sg``: stop-gradient). Parameters that ``event_fn`` uses directly are differentiated too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import scipy.optimize
import torch

from odebench.compat import odeint
from odebench.errors import EventNotFoundError, InvalidInputError

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EventFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SAMPLES_PER_WINDOW = 32
"""Sub-intervals of each search window in which a sign change is looked for."""


def odeint_event(func: Func, y0: torch.Tensor, t0: torch.Tensor, *, event_fn: EventFn,
                 reverse_time: bool = False, odeint_interface: Callable = odeint,
                 horizon: float = 1e6, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``dy/dt = func(t, y)`` from ``(t0, y0)`` until ``event_fn(t, y)`` first crosses zero.

    Args:
        func: vector field, as for :func:`odebench.odeint`.
        y0: initial state (a tensor; tuple states are not supported here).
        t0: initial time, a 0-d (or one-element) tensor; may require grad.
        event_fn: ``event_fn(t, y) -> tensor`` (any shape); the event is the first time any
            entry changes sign. No entry may be zero at ``t0``.
        reverse_time: integrate towards decreasing time.
        odeint_interface: ``odebench.odeint`` (default) or ``odebench.odeint_adjoint``, or any
            function with their signature.
        horizon: the search stops ``horizon`` time units from ``t0``.
        **kwargs: passed on to ``odeint_interface`` (rtol, atol, method, options, gradient, ...).

    Returns:
        ``(event_t, solution)``: the event time (0-d, dtype of ``t0``), differentiable with respect
        to y0, t0 and the parameters of ``func`` and ``event_fn``; and ``solution`` [2, *y0.shape],
        the states at ``t0`` and at ``event_t``.

    Raises:
        EventNotFoundError: ``event_fn`` kept its sign up to ``t0 +- horizon`` (``t_reached``).
        InvalidInputError: a tuple state, a bad ``t0``, or ``event_fn`` zero at ``t0``.
    """
    if not isinstance(y0, torch.Tensor):
        raise InvalidInputError("odeint_event: y0 must be a Tensor (tuple states are not supported)")
    if not isinstance(t0, torch.Tensor) or t0.numel() != 1 or not t0.is_floating_point():
        raise InvalidInputError("odeint_event: t0 must be a one-element floating-point tensor")
    t0 = t0.reshape(())
    if not (horizon > 0 and math.isfinite(horizon)):
        raise InvalidInputError(f"odeint_event: horizon must be a positive finite float, got {horizon}")
    direction = -1.0 if reverse_time else 1.0

    def solve_to(y_start: torch.Tensor, times: list[float]) -> torch.Tensor:
        return odeint_interface(func, y_start,
                                torch.tensor(times, dtype=t0.dtype, device=t0.device), **kwargs)

    with torch.no_grad():
        y_start = y0.detach()
        sign0 = torch.sign(event_fn(t0.detach(), y_start))
        if bool((sign0 == 0).any()):
            raise InvalidInputError(f"odeint_event: event_fn is zero at t0={float(t0):.10g}")

        def g(t: float, y: torch.Tensor) -> float:
            return float((event_fn(torch.tensor(t, dtype=t0.dtype, device=t0.device), y)
                      * sign0).min())

        left, right, y_left = _bracket(solve_to, g, float(t0), y_start, direction, horizon)
        t_event = _refine(solve_to, g, left, right, y_left)
    return _differentiable(func, event_fn, sign0, odeint_interface, kwargs, y0, t0, t_event)


def _bracket(solve_to: Callable, g: Callable[[float, torch.Tensor], float], t_start: float,
             y: torch.Tensor, direction: float, horizon: float
             ) -> tuple[float, float, torch.Tensor]:
    """Windows of doubling length until ``g`` (positive at the start) is <= 0 at a sample:
    returns (last positive sample time, first non-positive one, state at the former)."""
    a, width = t_start, 1.0
    while True:
        b = t_start + direction * min(abs(a - t_start) + width, horizon)
        times = [a + (b - a) * k / SAMPLES_PER_WINDOW for k in range(SAMPLES_PER_WINDOW)] + [b]
        ys = solve_to(y, times)
        for k in range(1, len(times)):
            if g(times[k], ys[k]) <= 0:
                return times[k - 1], times[k], ys[k - 1]
        if b == t_start + direction * horizon:
            raise EventNotFoundError(
                f"odeint_event: event_fn did not change sign between t0={t_start:.10g} and "
                f"t={b:.10g} (horizon {horizon:.3g}); last value {g(b, ys[-1]):.6g}",
                t_reached=b)
        a, y, width = b, ys[-1], 2 * width


def _refine(solve_to: Callable, g: Callable[[float, torch.Tensor], float], left: float,
            right: float, y_left: torch.Tensor) -> float:
    """Brent's method on [left, right], each trial a solve from ``(left, y_left)``. When that
    solve does not confirm the sign change at ``right`` (``g`` is within the solver's error of 0
    there), ``right`` is the event."""

    def g_at(s: float) -> float:
        return g(left, y_left) if s == left else g(s, solve_to(y_left, [left, s])[-1])

    if g_at(right) >= 0:  # 0, or the refining solve puts g back above 0: within solver error
        return right
    scale = max(abs(left), abs(right), 1.0)
    return scipy.optimize.brentq(g_at, left, right, xtol=4 * 2.2e-16 * scale, rtol=8.9e-16)


def _differentiable(func: Func, event_fn: EventFn, sign0: torch.Tensor, odeint_interface: Callable,
                    kwargs: dict, y0: torch.Tensor, t0: torch.Tensor, t_event: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The event time and the final state, with the implicit-function gradients."""
    t_star = torch.tensor(t_event, dtype=t0.dtype, device=t0.device)
    ys = odeint_interface(func, y0, torch.stack([t0, t_star]), **kwargs)
    y_star = ys[-1]
    g = (event_fn(t_star, y_star) * sign0).min()
    with torch.no_grad():
        f_star = func(t_star, y_star.detach())
    with torch.enable_grad():
        t_ = t_star.clone().requires_grad_(True)
        y_ = y_star.detach().requires_grad_(True)
        g_ = (event_fn(t_, y_) * sign0).min()
        g_t, g_y = torch.autograd.grad(g_, [t_, y_], allow_unused=True)
    total = (g_t if g_t is not None else 0.0) + (
        (g_y * f_star).sum() if g_y is not None else 0.0)
    total = float(total)
    if total == 0.0:
        raise InvalidInputError(
            f"odeint_event: event_fn is tangent at the event t={t_event:.10g} (its time derivative "
            "along the solution is 0): the event time is not differentiable")
    event_t = t_star - ((g - g.detach()) / total).to(t0.dtype)
    y_event = y_star + (event_t - event_t.detach()).to(y_star.dtype) * f_star
    return event_t, torch.stack([ys[0], y_event])

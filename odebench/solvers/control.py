"""Step-size control as objects the one loop asks for each step: :class:`Adaptive` (PI control
of the error ratio, from Hairer's initial step) and :class:`FixedStep` (a prescribed grid landing
on every output time); both ``init`` at the start of a solve and ``adapt`` after each attempt."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from odebench.solvers.func import FlatField
from odebench.solvers.norm import ErrorNorm


@dataclass
class PIController:
    """Proportional-integral step-size controller (Gustafsson 1991; Hairer & Wanner, Solving ODEs
    II, IV.2): ``h_new = h * safety * err^-(beta1) * err_prev^(beta2)``, limited to
    [min_factor, max_factor]; no growth right after a rejection.

    ``k`` is the order of the error estimate plus one.
    """

    k: int
    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    beta1_num: float = 0.7
    beta2_num: float = 0.4
    err_prev: float = 1.0
    rejected_last: bool = False

    def accept_factor(self, err: float) -> float:
        """Step-size factor after an accepted step with error ratio ``err`` (<= 1)."""
        if err == 0.0:
            factor = self.max_factor
        else:
            factor = (self.safety * err ** (-self.beta1_num / self.k)
                      * self.err_prev ** (self.beta2_num / self.k))
        factor = min(self.max_factor, max(self.min_factor, factor))
        if self.rejected_last:
            factor = min(1.0, factor)
        self.err_prev = max(err, 1e-4)
        self.rejected_last = False
        return factor

    def reject_factor(self, err: float) -> float:
        """Step-size factor after a rejected step (err > 1, or non-finite)."""
        self.rejected_last = True
        if not math.isfinite(err):
            return self.min_factor
        return max(self.min_factor, self.safety * err ** (-1.0 / self.k))


def initial_step(f: FlatField, t0: float, y0: torch.Tensor, f0: torch.Tensor, order: int,
                 rtol: float, atol: float, direction: float, interval: float,
                 norm_numel: int | None = None) -> float:
    """Hairer's automatic initial step (Hairer, Norsett, Wanner, Solving ODEs I, II.4): one extra
    evaluation of ``f``. Returns |h| (time units); ``order`` is that of the error estimate."""
    n = norm_numel if norm_numel is not None else y0.numel()
    whole = n == y0.numel()
    root_n = math.sqrt(max(n, 1))
    quiet = torch.no_grad() if torch.is_grad_enabled() else contextlib.nullcontext()
    with quiet:
        y, fy = (y0, f0) if whole else (y0[:n], f0[:n])
        # scale / rtol: |y| + atol / rtol (one operation fewer; rtol is divided out on the host)
        scale = y.abs().add_(atol / rtol)
        d0, d1 = (x / (rtol * root_n) for x in
                  torch.linalg.vector_norm(torch.stack([y, fy]).div_(scale), dim=1).tolist())
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, interval)
        f1 = f(t0 + direction * h0, torch.add(y0, f0, alpha=direction * h0))
        diff = torch.sub(f1 if whole else f1[:n], fy).div_(scale)
        d2 = float(torch.linalg.vector_norm(diff)) / (rtol * root_n * h0)
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100 * h0, h1, interval)


class Controller(Protocol):
    """What the loop asks: the next step, and what to do after an attempt."""

    fixed: bool

    def init(self, f: FlatField, t0: float, y0: torch.Tensor, f0: torch.Tensor,
             error_order: int, ts: list[float]) -> None:
        """Start a solve through the output times ``ts`` from ``(t0, y0)``, ``f0 = f(t0, y0)``."""
        ...

    def propose(self, t: float) -> tuple[float, float]:
        """The next step from ``t``: (signed h, the time it ends at)."""
        ...

    def adapt(self, accepted: bool, err: float, h: float) -> None:
        """After an attempt of size ``h`` with error ratio ``err``."""
        ...

    @property
    def h_next(self) -> float:
        """|h| of the next step (the solve's ``Integration.h_next``)."""
        ...


class Adaptive:
    """PI control (:class:`PIController`) of |h| between Hairer's initial step (or
    ``first_step``) and ``max_step``; the last step is shortened to land on the end time, output
    times inside a step come from the dense output. ``norm`` sets the initial step's scale."""

    fixed = False

    def __init__(self, norm: ErrorNorm, max_step: float = math.inf,
                 first_step: float | None = None):
        self.norm, self.max_step, self.first_step = norm, max_step, first_step
        self.h_abs = 0.0
        self.landing = False

    def init(self, f: FlatField, t0: float, y0: torch.Tensor, f0: torch.Tensor,
             error_order: int, ts: list[float]) -> None:
        self.direction = 1.0 if ts[-1] > ts[0] else -1.0
        self.t_end = ts[-1]
        interval = abs(self.t_end - ts[0])
        norm = self.norm
        if self.first_step is None:
            h_abs = initial_step(f, t0, y0, f0, error_order, norm.rtol, norm.atol,
                                 self.direction, interval, norm.n)
        else:
            h_abs = self.first_step
        self.h_abs = min(h_abs, self.max_step, interval)
        self.pi = PIController(k=error_order + 1)

    def propose(self, t: float) -> tuple[float, float]:
        h = self.direction * self.h_abs
        self.landing = self.direction * (t + h - self.t_end) >= 0
        if self.landing:
            return self.t_end - t, self.t_end
        return h, t + h

    def adapt(self, accepted: bool, err: float, h: float) -> None:
        if not accepted:
            self.h_abs = abs(h) * self.pi.reject_factor(err)
            return
        h_abs = min(abs(h) * self.pi.accept_factor(err), self.max_step)
        self.h_abs = max(h_abs, abs(h)) if self.landing else h_abs

    @property
    def h_next(self) -> float:
        return self.h_abs


class FixedStep:
    """Steps of ``step_size`` (one step per output interval when None); in each output interval
    the last step is snapped or shortened to land on the output time (:func:`fixed_steps`)."""

    fixed = True

    def __init__(self, step_size: float | None):
        self.step_size = step_size
        self.h = 0.0

    def init(self, f: FlatField, t0: float, y0: torch.Tensor, f0: torch.Tensor,
             error_order: int, ts: list[float]) -> None:
        steps = [(t, h) for a, b in zip(ts[:-1], ts[1:]) for t, h, _ in
                 fixed_steps(a, b, self.step_size)]
        ends = [t for t, _ in steps[1:]] + [ts[-1]]
        self._steps = iter([(h, end) for (_, h), end in zip(steps, ends)])

    def propose(self, t: float) -> tuple[float, float]:
        self.h, end = next(self._steps)
        return self.h, end

    def adapt(self, accepted: bool, err: float, h: float) -> None:
        """Nothing: the grid is fixed."""

    @property
    def h_next(self) -> float:
        return abs(self.h)


def fixed_steps(t_start: float, t_stop: float,
                step_size: float | None) -> Iterator[tuple[float, float, bool]]:
    """The steps ``(t, h, lands)`` of a fixed-step march over one output interval: steps of
    ``step_size`` (one step for the whole interval when None), the last full one snapped onto
    ``t_stop`` when within 1e-12 of the interval, else a shorter step to land there; ``lands``
    marks the step that ends on ``t_stop``."""
    span = t_stop - t_start
    if step_size is None:
        yield t_start, span, True
        return
    h = math.copysign(step_size, span)
    n_full = int(math.floor(abs(span) / step_size * (1 + 1e-12)))
    t = t_start
    for i in range(n_full):
        snap = i == n_full - 1 and abs(t + h - t_stop) <= 1e-12 * abs(span)
        t_next = t_stop if snap else t + h
        yield t, t_next - t, snap
        t = t_next
    if t != t_stop:
        yield t, t_stop - t, True

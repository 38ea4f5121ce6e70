"""One loop for every explicit Runge-Kutta tableau: fixed-step and adaptive, with dense output.

The state is a flat 1-D tensor; :class:`~odebench.solvers.func.FlatField` reshapes for the user's
``func``. Every tensor operation is out-of-place, so that autograd can differentiate through the
loop (the ``backprop`` gradient). The only host synchronisation per step is the error ratio that
decides acceptance; output times are located with Python floats.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from odebench.solution import Stats
from odebench.solvers.control import PIController, initial_step
from odebench.solvers.func import FlatField
from odebench.solvers.loop import Integration, Observer, StepLoop, StepRecord
from odebench.solvers.options import SolverOptions
from odebench.solvers.tableaus import ButcherTableau


class CompiledTableau:
    """A tableau's coefficients as tensors of one dtype and device (cached per method)."""

    def __init__(self, tab: ButcherTableau, dtype: torch.dtype, device: torch.device):
        self.tab = tab
        self.c = [float(c) for c in tab.c]
        self.a_first = float(tab.a[1, 0]) if tab.stages > 1 else 0.0
        self.a = [torch.as_tensor(tab.a[i, :i], dtype=dtype, device=device)
                  for i in range(tab.stages)]
        self.b = torch.as_tensor(tab.b, dtype=dtype, device=device)
        self.e = (None if tab.b_error is None
                  else torch.as_tensor(tab.b_error, dtype=dtype, device=device))
        self.e_head = None if self.e is None else self.e[:-1]
        self.e_last = None if tab.b_error is None else float(tab.b_error[-1])
        self.e35 = (None if tab.b_error3 is None else torch.as_tensor(
            np.stack([tab.b_error, tab.b_error3], axis=1), dtype=dtype, device=device))
        self.c_extra = [float(c) for c in tab.c_extra]
        self.a_extra = [torch.as_tensor(row[: tab.stages + i], dtype=dtype, device=device)
                        for i, row in enumerate(tab.a_extra)]
        self.has_extra_stages = tab.dense is not None and tab.dense.shape[0] > tab.stages
        self.dense_order = 0 if tab.dense is None else tab.dense.shape[1]
        self.dense_t = (None if tab.dense is None else
                        torch.as_tensor(np.asarray(tab.dense).T, dtype=dtype, device=device))
        self.dtype, self.device = dtype, device

    def dense_weights(self, thetas: list[float]) -> torch.Tensor:
        """Continuous-extension weights ``w(theta)`` for each theta, shape [m, s_dense]: the
        powers theta^1..theta^p as one small tensor, times the dense-output matrix."""
        powers = [[theta ** (j + 1) for j in range(self.dense_order)] for theta in thetas]
        return torch.mm(torch.tensor(powers, dtype=self.dtype, device=self.device), self.dense_t)


def rk_stages(f: FlatField, ct: CompiledTableau, t: float, y: torch.Tensor, h: float,
              k0: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Evaluate one step's stages. Returns (stages [s tensors of shape [N]], y1).

    For FSAL tableaus y1 is the input of the last stage; otherwise ``y + h * sum b_i k_i``.
    Each stage costs one stack and one fused multiply-add (``addmv``) besides ``f``.
    """
    ks, y1, _ = _stages(f, ct, t, y, h, k0)
    return ks, y1


def _stages(f: FlatField, ct: CompiledTableau, t: float, y: torch.Tensor, h: float,
            k0: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """As :func:`rk_stages`, plus the last stacked stage matrix [N, j] the step built (j = s - 1
    for FSAL tableaus, s otherwise; None for one-stage methods), which the error estimate
    reuses instead of stacking the stages again."""
    ks = [k0]
    c = ct.c
    yi = y
    kmat = None
    times = [t + ci * h for ci in c]
    # all stage times in one tensor: one operation per step, not one per stage
    stage_t = torch.tensor(times, dtype=y.dtype, device=y.device).unbind() if len(c) > 1 else ()
    for i in range(1, len(c)):
        if i == 1:
            yi = torch.add(y, k0, alpha=h * ct.a_first)
        else:
            kmat = torch.stack(ks, 1)
            yi = torch.addmv(y, kmat, ct.a[i], alpha=h)
        ks.append(f.at(times[i], stage_t[i], yi))
    if ct.tab.fsal:
        return ks, yi, kmat if len(ks) > 2 else torch.stack(ks[:-1], 1)
    if len(ks) == 1:
        return ks, torch.add(y, k0, alpha=h * float(ct.tab.b[0])), None
    kmat = torch.stack(ks, 1)
    return ks, torch.addmv(y, kmat, ct.b, alpha=h), kmat


def extra_stages(f: FlatField, ct: CompiledTableau, t: float, y: torch.Tensor, h: float,
                 ks: list[torch.Tensor]) -> list[torch.Tensor]:
    """The additional stages some dense outputs need (DOP853's 7th-order extension)."""
    ks = list(ks)
    for c, a in zip(ct.c_extra, ct.a_extra):
        ks.append(f(t + c * h, torch.addmv(y, torch.stack(ks, 1), a, alpha=h)))
    return ks


def dense_eval(ct: CompiledTableau, y: torch.Tensor, h: float, ks: list[torch.Tensor],
               thetas: list[float]) -> torch.Tensor:
    """States at ``t + theta*h`` for each theta from the continuous extension, shape [m, N]."""
    w = ct.dense_weights(thetas)
    return torch.addmm(y, w, torch.stack(ks), alpha=h)  # y [N] broadcasts over the m rows


def integrate_fixed(f: FlatField, ct: CompiledTableau, y0: torch.Tensor, ts: list[float],
                    step_size: float | None, stats: Stats, max_steps: int,
                    observer: Observer | None = None) -> Integration:
    """March with steps of ``step_size`` (or one step per output interval when None); in each
    output interval the last step is shortened to land exactly on the output time."""
    loop = StepLoop(f, ts, y0, stats, max_steps, ct.tab.name)
    y = y0
    h = 0.0
    for t_start, t_stop in zip(ts[:-1], ts[1:]):
        span = t_stop - t_start
        direction = math.copysign(1.0, span)
        n_full = (int(math.floor(abs(span) / step_size * (1 + 1e-12)))
                  if step_size is not None else 1)
        t = t_start
        steps = [direction * step_size] * n_full if step_size is not None else [span]
        for i, h in enumerate(steps):
            loop.budget(t, h)
            t_next = t_stop if (i == len(steps) - 1 and
                                abs(t + h - t_stop) <= 1e-12 * abs(span)) else t + h
            h = t_next - t
            lands = t_next == t_stop
            y = _fixed_step(f, ct, t, y, h, observer, len(loop.outputs), lands)
            stats.n_steps += 1
            t = t_next
        if t != t_stop:
            loop.budget(t, t_stop - t)
            y = _fixed_step(f, ct, t, y, t_stop - t, observer, len(loop.outputs), True)
            stats.n_steps += 1
        loop.outputs.append(y)
    loop.check_finite_fixed(h)
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=h)


def _fixed_step(f: FlatField, ct: CompiledTableau, t: float, y: torch.Tensor, h: float,
                observer: Observer | None, out_index: int, lands: bool) -> torch.Tensor:
    k0 = f(t, y)
    ks, y1 = rk_stages(f, ct, t, y, h, k0)
    if observer is not None:
        observer(StepRecord(t=t, h=h, y=y, ks=ks, out_first=out_index, exact=lands))
    return y1


def integrate_adaptive(f: FlatField, ct: CompiledTableau, y0: torch.Tensor, ts: list[float],
                       rtol: float, atol: float, stats: Stats, opts: SolverOptions,
                       max_steps: int, first_step: float | None = None,
                       norm_numel: int | None = None, observer: Observer | None = None,
                       dense_stages: bool = False, k0: torch.Tensor | None = None) -> Integration:
    """Adaptive integration through the output times ``ts`` (strictly monotone Python floats).

    Args:
        f: the flat vector field.
        ct: the compiled tableau (must have an error estimate and a dense output).
        y0: flat initial state, shape [N].
        ts: output times; the first is the start.
        rtol, atol: tolerances of the mixed error norm
            RMS(err / (atol + rtol * max(|y_n|, |y_n+1|))).
        stats: counters, updated in place.
        opts: solver options (max_step).
        max_steps: budget of attempted steps.
        first_step: initial |h|; Hairer's automatic choice when None.
        norm_numel: only the first ``norm_numel`` entries enter the error norm (seminorm).
        observer: called with every accepted step.
        dense_stages: also compute the extra dense-output stages for every accepted step (and hand
            them to the observer), not only for steps that contain an output time.
        k0: ``f(ts[0], y0)`` if already known.
    """
    loop = StepLoop(f, ts, y0, stats, max_steps, ct.tab.name)
    tab = ct.tab
    direction = 1.0 if ts[-1] > ts[0] else -1.0
    t_end = ts[-1]
    interval = abs(t_end - ts[0])
    n = norm_numel if norm_numel is not None else y0.numel()
    t, y = ts[0], y0
    if k0 is None:
        k0 = f(t, y)
    if first_step is None:
        h_abs = initial_step(f, t, y, k0, tab.error_order, rtol, atol, direction, interval,
                             norm_numel)
    else:
        h_abs = first_step
    h_abs = min(h_abs, opts.max_step, interval)
    controller = PIController(k=tab.error_order + 1)
    whole = n == y0.numel()
    # one reusable context for the per-step error estimate (nothing to switch off when the
    # solve records no graph)
    quiet = torch.no_grad() if torch.is_grad_enabled() else contextlib.nullcontext()
    has_extra = ct.has_extra_stages
    with quiet:
        ay = (y if whole else y[:n]).abs()
    while not loop.done:
        loop.check_underflow(t, h_abs, direction)
        h = direction * h_abs
        landing = direction * (t + h - t_end) >= 0
        if landing:
            h = t_end - t
        loop.budget(t, h)
        ks, y1, kmat = _stages(f, ct, t, y, h, k0)
        with quiet:
            ay1 = (y1 if whole else y1[:n]).abs()
            err = _error_ratio(ct, ks, kmat if whole else None, h, ay, ay1, rtol, atol, n)
        if not err <= 1.0:
            h_abs = loop.reject(t, h, err, controller)
            continue
        t_new = t_end if landing else t + h
        out_first, thetas, exact = loop.accept(t, h, t_new)
        need_extra = has_extra and (thetas or dense_stages)
        ks_dense = extra_stages(f, ct, t, y, h, ks) if need_extra else ks
        if thetas:
            loop.outputs.extend(dense_eval(ct, y, h, ks_dense, thetas).unbind(0))
        if exact:
            loop.outputs.append(y1)
        if observer is not None:
            observer(StepRecord(t=t, h=h, y=y, ks=ks_dense, out_first=out_first, thetas=thetas,
                                exact=exact))
        h_abs = min(abs(h) * controller.accept_factor(err), opts.max_step)
        if landing:
            h_abs = max(h_abs, abs(h))
        t, y, k0, ay = t_new, y1, ks[-1], ay1
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=h_abs)


def _error_ratio(ct: CompiledTableau, ks: list[torch.Tensor], kmat: torch.Tensor | None,
                 h: float, ay: torch.Tensor, ay1: torch.Tensor, rtol: float, atol: float,
                 n: int) -> float:
    """The mixed-norm error ratio of a step (accept when <= 1):
    ``|h| RMS(sum_i e_i k_i / (atol + rtol max(|y|, |y1|)))``, computed as
    ``|h| / rtol * RMS(sum_i e_i k_i / (max(|y|, |y1|) + atol / rtol))`` (one operation fewer).
    ``kmat``: the stage matrix the step stacked (all stages, or all but the FSAL one), or None to
    stack the first ``n`` entries of ``ks`` here (seminorms)."""
    if kmat is None:
        kmat = torch.stack([k[:n] for k in ks], 1) if n != ks[0].numel() else torch.stack(ks, 1)
    scale = torch.maximum(ay, ay1).add_(atol / rtol)
    factor = abs(h) / (rtol * math.sqrt(n))
    if ct.e35 is None:
        if kmat.shape[1] == len(ks):
            err = torch.mv(kmat, ct.e)
        else:  # FSAL: the last stage was not stacked
            err = torch.addmv(ks[-1], kmat, ct.e_head, beta=ct.e_last)
        return factor * float(torch.linalg.vector_norm(err.div_(scale)))
    # DOP853's combined 5th/3rd-order estimate (Hairer's dop853.f, as in SciPy's DOP853); its
    # error weights span the FSAL stage too, which the step did not stack.
    if kmat.shape[1] != len(ks):
        kmat = torch.stack(ks, 1)
    errs = torch.mm(kmat, ct.e35).div_(scale.unsqueeze(1))
    e5, e3 = (torch.linalg.vector_norm(errs, dim=0) ** 2).tolist()
    if e5 == 0.0 and e3 == 0.0:
        return 0.0
    return abs(h) * e5 / (rtol * math.sqrt((e5 + 0.01 * e3) * n))

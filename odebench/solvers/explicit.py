"""One loop for every explicit Runge-Kutta tableau: fixed-step and adaptive, with dense output.

The state is a flat 1-D tensor; :class:`~odebench.solvers.func.FlatField` reshapes for the user's
``func``. Where the stages live is the stage store's business (:mod:`odebench.solvers.stages`):
while autograd records, every operation is out-of-place, so that the ``backprop`` gradient
differentiates through the loop; a solve that records nothing copies its stages into one
preallocated buffer. The only host synchronisation per step is the error ratio that decides
acceptance; output times are located with Python floats.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from odebench.solution import Stats
from odebench.solvers.control import PIController, initial_step
from odebench.solvers.func import FlatField
from odebench.solvers.loop import Integration, Observer, StepLoop, StepRecord, fixed_steps
from odebench.solvers.options import SolverOptions
from odebench.solvers.stages import BufferedStages, StackedStages
from odebench.solvers.tableaus import ButcherTableau


class CompiledTableau:
    """A tableau's coefficients as tensors of one dtype and device (cached per method)."""

    def __init__(self, tab: ButcherTableau, dtype: torch.dtype, device: torch.device):
        self.tab = tab
        self.c = [float(c) for c in tab.c]
        self._c64 = torch.as_tensor(tab.c, dtype=torch.float64, device=device)
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
        self.rows = tab.stages + len(tab.c_extra)
        self.dense_order = 0 if tab.dense is None else tab.dense.shape[1]
        self.dense_t = (None if tab.dense is None else
                        torch.as_tensor(np.asarray(tab.dense).T, dtype=dtype, device=device))
        self.dtype, self.device = dtype, device

    def stage_times(self, t: float, h: float) -> torch.Tensor:
        """The stage times ``t + c_i h`` [s] in the state's dtype: computed in float64 as Python
        computes them, rounded once; two operations on the device instead of a list copied in."""
        times = self._c64.mul(h).add_(t)
        return times if self.dtype == torch.float64 else times.to(self.dtype)

    def dense_weights(self, thetas: list[float]) -> torch.Tensor:
        """Continuous-extension weights ``w(theta)`` for each theta, shape [m, s_dense]: the
        powers theta^1..theta^p as one small tensor, times the dense-output matrix. (Torch, not
        NumPy: inside the loop NumPy's calls measured slower, its code being cold.)"""
        powers = [[theta ** (j + 1) for j in range(self.dense_order)] for theta in thetas]
        return torch.mm(torch.tensor(powers, dtype=self.dtype, device=self.device), self.dense_t)


def _store(f: FlatField, ct: CompiledTableau, like: torch.Tensor,
           observer: Observer | None) -> StackedStages | BufferedStages:
    """The stage store for a solve: the preallocated buffer when the solve records no graph and
    no observer keeps the stages, else the stacked (differentiable, persistent) list."""
    if observer is None and not torch.is_grad_enabled():
        return BufferedStages(f, ct.rows, like)
    return StackedStages(f)


def run_stages(st: StackedStages | BufferedStages, ct: CompiledTableau, t: float,
               y: torch.Tensor, h: float, k0: torch.Tensor, fsal_stage: bool = True) -> torch.Tensor:
    """Evaluate one step's stages into ``st`` (started with the first stage ``k0``); returns
    y1 [N].

    For FSAL tableaus y1 is the input of the last stage; otherwise ``y + h * sum b_i k_i``.
    Each stage costs one fused multiply-add (``addmv``) over the stage matrix besides ``f``.
    ``fsal_stage=False`` leaves out the FSAL stage ``f(t + h, y1)`` (a replay whose next step
    does not start from it and that needs no dense output: the stages are then one short).
    """
    c = ct.c
    # all stage times in one tensor: two operations per step, not one per stage
    stage_t = ct.stage_times(t, h).unbind() if len(c) > 1 else ()
    yi = y
    for i in range(1, len(c)):
        yi = torch.add(y, k0, alpha=h * ct.a_first) if i == 1 else st.combine(y, ct.a[i], h)
        if i == len(c) - 1 and ct.tab.fsal and not fsal_stage:
            return yi
        st.push(t + c[i] * h, stage_t[i], yi)
    if ct.tab.fsal:
        return yi
    if len(c) == 1:
        return torch.add(y, k0, alpha=h * float(ct.tab.b[0]))
    return st.combine(y, ct.b, h)


def run_extra_stages(st: StackedStages | BufferedStages, ct: CompiledTableau, t: float,
                     y: torch.Tensor, h: float) -> None:
    """Evaluate into ``st`` the additional stages some dense outputs need (DOP853's 7th-order
    extension), after the step's own stages."""
    for c, a in zip(ct.c_extra, ct.a_extra):
        st.push(t + c * h, st.f.time(t + c * h), st.combine(y, a, h))


def rk_stages(f: FlatField, ct: CompiledTableau, t: float, y: torch.Tensor, h: float,
              k0: torch.Tensor, fsal_stage: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One step's stages, recorded by autograd: (stages [s tensors of shape [N]], y1); see
    :func:`run_stages` for ``fsal_stage``."""
    st = StackedStages(f)
    y1 = run_stages(st, ct, t, y, h, st.start(k0), fsal_stage)
    return st.stages(), y1


def extra_stages(f: FlatField, ct: CompiledTableau, t: float, y: torch.Tensor, h: float,
                 ks: list[torch.Tensor]) -> list[torch.Tensor]:
    """``ks`` followed by the additional dense-output stages (see :func:`run_extra_stages`)."""
    st = StackedStages(f, ks)
    run_extra_stages(st, ct, t, y, h)
    return st.stages()


def dense_eval(ct: CompiledTableau, y: torch.Tensor, h: float, ks: list[torch.Tensor],
               thetas: list[float]) -> torch.Tensor:
    """States at ``t + theta*h`` for each theta from the continuous extension, shape [m, N]."""
    return torch.addmm(y, ct.dense_weights(thetas), torch.stack(ks), alpha=h)


def integrate_fixed(f: FlatField, ct: CompiledTableau, y0: torch.Tensor, ts: list[float],
                    step_size: float | None, stats: Stats, max_steps: int,
                    observer: Observer | None = None) -> Integration:
    """March with steps of ``step_size`` (or one step per output interval when None); in each
    output interval the last step is shortened to land exactly on the output time."""
    loop = StepLoop(f, ts, y0, stats, max_steps, ct.tab.name)
    st = _store(f, ct, y0, observer)
    y = y0
    h = 0.0
    for t_start, t_stop in zip(ts[:-1], ts[1:]):
        for t, h, lands in fixed_steps(t_start, t_stop, step_size):
            loop.budget(t, h)
            y = _fixed_step(st, ct, t, y, h, observer, len(loop.outputs), lands)
            stats.n_steps += 1
        loop.outputs.append(y)
    loop.check_finite_fixed(h)
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=h)


def _fixed_step(st: StackedStages | BufferedStages, ct: CompiledTableau, t: float,
                y: torch.Tensor, h: float, observer: Observer | None, out_index: int,
                lands: bool) -> torch.Tensor:
    y1 = run_stages(st, ct, t, y, h, st.start(st.f(t, y)))
    if observer is not None:
        observer(StepRecord(t=t, h=h, y=y, ks=st.stages(), out_first=out_index, exact=lands))
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
    st = _store(f, ct, y0, observer)
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
        k0 = st.start(k0)
        y1 = run_stages(st, ct, t, y, h, k0)
        with quiet:
            ay1 = (y1 if whole else y1[:n]).abs()
            err = _error_ratio(ct, st, h, ay, ay1, rtol, atol, n)
        if not err <= 1.0:
            h_abs = loop.reject(t, h, err, controller)
            continue
        t_new = t_end if landing else t + h
        out_first, thetas, exact = loop.accept(t, h, t_new)
        if has_extra and (thetas or dense_stages):
            run_extra_stages(st, ct, t, y, h)
        if thetas:
            loop.outputs.extend(st.dense(y, ct.dense_weights(thetas), h).unbind(0))
        if exact:
            loop.outputs.append(y1)
        if observer is not None:
            observer(StepRecord(t=t, h=h, y=y, ks=st.stages(), out_first=out_first,
                                thetas=thetas, exact=exact))
        h_abs = min(abs(h) * controller.accept_factor(err), opts.max_step)
        if landing:
            h_abs = max(h_abs, abs(h))
        t, y, k0, ay = t_new, y1, st.k(tab.stages - 1), ay1
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=h_abs)


def _error_ratio(ct: CompiledTableau, st: StackedStages | BufferedStages, h: float,
                 ay: torch.Tensor, ay1: torch.Tensor, rtol: float, atol: float, n: int) -> float:
    """The mixed-norm error ratio of a step (accept when <= 1):
    ``|h| RMS(sum_i e_i k_i / (atol + rtol max(|y|, |y1|)))``, computed as
    ``|h| / rtol * RMS(sum_i e_i k_i / (max(|y|, |y1|) + atol / rtol))`` (one operation fewer).
    Only the first ``n`` entries enter the norm (``ay``, ``ay1`` hold those; seminorms)."""
    scale = torch.maximum(ay, ay1).add_(atol / rtol)
    if ct.e35 is None:
        err = st.error(ct.e, ct.e_head, ct.e_last, n)
        return abs(h) / (rtol * math.sqrt(n)) * float(torch.linalg.vector_norm(err.div_(scale)))
    # DOP853's combined 5th/3rd-order estimate (Hairer's dop853.f, as in SciPy's DOP853)
    errs = st.mm(ct.e35, n)
    e5, e3 = (torch.linalg.vector_norm(errs.div_(scale.unsqueeze(1)), dim=0) ** 2).tolist()
    if e5 == 0.0 and e3 == 0.0:
        return 0.0
    return abs(h) * e5 / (rtol * math.sqrt((e5 + 0.01 * e3) * n))

"""Every explicit Runge-Kutta tableau as one :class:`~odebench.solvers.method.Method`,
:class:`ExplicitRK`, which the one loop (:func:`odebench.solvers.loop.integrate`) runs, fixed-step
and adaptive, with dense output.

The state is a flat 1-D tensor; :class:`~odebench.solvers.func.FlatField` reshapes for the user's
``func``. Where the stages live is the stage store's business (:mod:`odebench.solvers.stages`):
while autograd records, every operation is out-of-place, so that the ``backprop`` gradient
differentiates through the loop; a solve that records nothing copies its stages into one
preallocated buffer. The only host synchronisation per step is the error ratio that decides
acceptance; output times are located with Python floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from odebench.solution import Stats
from odebench.solvers.func import FlatField
from odebench.solvers.method import StepResult
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
           keeps_stages: bool) -> StackedStages | BufferedStages:
    """The stage store for a solve: the preallocated buffer when the solve records no graph and
    no observer keeps the stages, else the stacked (differentiable, persistent) list."""
    if not keeps_stages and not torch.is_grad_enabled():
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


def dense_eval(ct: CompiledTableau, y: torch.Tensor, h: float, ks: list[torch.Tensor],
               thetas: list[float]) -> torch.Tensor:
    """States at ``t + theta*h`` for each theta from the continuous extension, shape [m, N]."""
    return torch.addmm(y, ct.dense_weights(thetas), torch.stack(ks), alpha=h)


@dataclass(slots=True)
class RKInfo:
    """What the dense output of one explicit step needs: its start ``t``, state ``y`` [N] and
    signed size ``h``, the stage store, and (when the store keeps them) the stage list ``ks``,
    which outlives the step."""

    t: float
    y: torch.Tensor
    h: float
    store: StackedStages | BufferedStages
    ks: list[torch.Tensor] | None


class ExplicitRK:
    """An explicit Runge-Kutta tableau as a :class:`~odebench.solvers.method.Method`.

    State: ``[store, k0]``, the stage store of the solve and the first stage ``f(t, y)`` of the
    next step (the FSAL stage of the last one, or None to evaluate). Error estimates are slopes:
    ``error_scale`` is |h|.
    """

    implicit = False

    def __init__(self, ct: CompiledTableau):
        self.ct = ct
        tab = ct.tab
        self.name, self.order, self.error_order = tab.name, tab.order, tab.error_order
        self.adaptive, self.has_dense = tab.adaptive, tab.dense is not None

    def init(self, f: FlatField, t0: float, y0: torch.Tensor, stats: Stats,
             keeps_stages: bool, jac: Callable | None = None) -> list:
        return [_store(f, self.ct, y0, keeps_stages), f(t0, y0)]

    def slope(self, state: list) -> torch.Tensor:
        return state[1]

    def step(self, f: FlatField, t: float, y: torch.Tensor, h: float, state: list,
             need_next: bool = True) -> StepResult:
        st, k0 = state
        ct = self.ct
        # the store's copy of the first stage (row 0 of a buffer) outlives a rejected attempt;
        # the stage it came from may not
        k0 = state[1] = st.start(k0 if k0 is not None else f(t, y))
        y1 = run_stages(st, ct, t, y, h, k0, fsal_stage=need_next)
        info = RKInfo(t, y, h, st, st.stages() if isinstance(st, StackedStages) else None)
        nxt = [st, st.k(ct.tab.stages - 1) if ct.tab.fsal and need_next else None]
        return StepResult(y1=y1, dense_info=info, state=nxt)

    def error(self, info: RKInfo, n: int) -> tuple[torch.Tensor, float]:
        """``sum_i e_i k_i`` in the first ``n`` entries ([n], or [n, 2] for DOP853's pair) and
        |h|."""
        ct, st = self.ct, info.store
        if ct.e35 is None:
            return st.error(ct.e, ct.e_head, ct.e_last, n), abs(info.h)
        return st.mm(ct.e35, n), abs(info.h)

    def prepare_dense(self, f: FlatField, info: RKInfo) -> None:
        if self.ct.has_extra_stages:
            run_extra_stages(info.store, self.ct, info.t, info.y, info.h)

    def dense(self, info: RKInfo, thetas: list[float]) -> torch.Tensor:
        if info.ks is not None:
            return dense_eval(self.ct, info.y, info.h, info.ks, thetas)
        return info.store.dense(info.y, self.ct.dense_weights(thetas), info.h)

    def start_slope(self, info: RKInfo) -> torch.Tensor:
        return info.ks[0]

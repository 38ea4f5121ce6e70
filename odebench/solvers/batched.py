"""Per-sample adaptive explicit Runge-Kutta steps over a batch (``solve(..., batch_dims=1)``).

The state is a batch ``[B, *state]`` of independent samples: row ``b`` of ``func(t, y)`` may
depend only on row ``b`` of ``y`` and on ``t[b]``. Each sample has its own time, step size,
accept/reject decision, error norm (the mixed RMS norm over that sample's entries), PI controller
state, step budget and counters, and optionally its own output times (a row of ``t`` [B, T]);
torchode's design (Lienen & Guennemann, "torchode", 2022), with odebench's tableaus
(:data:`odebench.solvers.tableaus.TABLEAUS`), PI controller constants and Hairer's initial step.

Every stage is one batched evaluation of ``func`` on the whole batch. ``func`` receives the times
as a tensor of shape [B, 1, ..., 1] (``y0.ndim`` dimensions, the state's dtype) that broadcasts
against ``y`` [B, *state]: entry ``b`` is sample ``b``'s stage time. A sample that has finished,
or whose step this iteration does not move it (a rejected attempt), keeps its state: finished
samples are evaluated with ``h = 0`` and never updated. The step-size decisions are made on the
host in float64 (one device-to-host read of the error ratios per iteration), as the joint loop
makes them, so that a sample solved in a batch takes the same steps as solved alone.

Gradients: ``backprop`` (autograd through the out-of-place loop) and ``checkpointed`` (the
forward pass records each iteration's per-sample (t, h, accepted) and the batch state at every
``checkpoint_every``-th recorded iteration; the backward pass replays the segments under autograd,
with ``h = 0`` for the samples that did not move).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)
from odebench.solution import PerSampleStats, Stats
from odebench.solvers.control import PIController
from odebench.solvers.func import CapturedGuard, _CreatedTensors, all_finite
from odebench.solvers.tableaus import TABLEAUS, ButcherTableau

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Gradient methods the batched loop runs.
BATCHED_GRADIENTS = ("backprop", "checkpointed")
#: Consecutive non-finite error estimates of one sample before NonFiniteError (as the joint loop).
NONFINITE_STREAK = 30


class Coefficients:
    """A tableau's stage rows, weights and dense output as tensors of one dtype and device.

    ``rows[i]`` [i] combines the first ``i`` stages into the input of stage ``i`` (the extra
    dense-output stages of DOP853 continue the list); ``c`` [s + extra] are the nodes.
    """

    def __init__(self, tab: ButcherTableau, dtype: torch.dtype, device: torch.device):
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)

        self.tab = tab
        s = tab.stages
        self.c = np.concatenate([np.asarray(tab.c, np.float64), np.asarray(tab.c_extra, np.float64)])
        self.rows = [tensor(tab.a[i, :i]) for i in range(s)]
        self.rows += [tensor(row[: s + i]) for i, row in enumerate(tab.a_extra)]
        self.b = tensor(tab.b)
        self.e = tensor(tab.b_error)
        self.e35 = (None if tab.b_error3 is None
                    else tensor(np.stack([tab.b_error, tab.b_error3], axis=1)))
        self.dense = tensor(tab.dense)  # [s_dense, q], columns for theta^1..theta^q
        self.n_dense = tab.dense.shape[0]
        self.dtype, self.device = dtype, device

    def dense_weights(self, thetas: np.ndarray) -> torch.Tensor:
        """Continuous-extension weights w(theta) [P, s_dense] for thetas [P]."""
        q = self.dense.shape[1]
        powers = np.asarray(thetas, np.float64)[:, None] ** np.arange(1, q + 1)[None, :]
        return torch.as_tensor(powers, dtype=self.dtype, device=self.device) @ self.dense.T


class BatchField:
    """``func`` on the flat batch: ``(t [B] float64 numpy, y [B, N]) -> dy [B, N]``, counting
    batched calls in ``calls``. The first call checks the returned shape, dtype and finiteness;
    later calls shape and dtype. With ``stats`` (backprop), each recorded output counts one in
    ``stats.nfe_backward`` when the backward pass reaches it."""

    def __init__(self, func: Func, shape: torch.Size, dtype: torch.dtype, device: torch.device,
                 stats: Stats | None = None):
        self.func, self.shape, self.dtype, self.device = func, shape, dtype, device
        self.t_shape = (shape[0],) + (1,) * (len(shape) - 1)
        self.calls = 0
        self.stats = stats
        self._checked = False
        self._flat = len(shape) == 2  # the loop's [B, N] is already the user's shape

    def __call__(self, t: np.ndarray, y: torch.Tensor) -> torch.Tensor:
        return self.at(self.times(t), y)

    def times(self, t: np.ndarray) -> torch.Tensor:
        """Host times [B] (or [m, B]) as a tensor in the state's dtype and device, shaped
        [B, 1, ...] (or [m, B, 1, ...]) as ``func`` receives them."""
        out = torch.as_tensor(t, dtype=torch.float64).to(self.dtype).to(self.device)
        return out.view(*t.shape[:-1], *self.t_shape)

    def at(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Evaluate at the device times ``t`` [B, 1, ...] (from :meth:`times`), ``y`` [B, N]."""
        self.calls += 1
        out = self.func(t, y if self._flat else y.view(self.shape))
        if not isinstance(out, torch.Tensor) or out.shape != self.shape \
                or out.dtype != self.dtype:
            got = (f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, torch.Tensor)
                   else type(out).__name__)
            raise InvalidInputError(
                f"func returned {got} but the batch y0 has shape {tuple(self.shape)}, dtype "
                f"{self.dtype} (batch_dims=1: func(t [B, 1, ...], y [B, ...]) -> [B, ...])")
        if not self._checked:
            if not all_finite(out):
                raise NonFiniteError("func returned non-finite values at the initial times "
                                     "(first evaluation)")
            self._checked = True
        if self.stats is not None and out.requires_grad and torch.is_grad_enabled():
            out.register_hook(self._count_backward)
        return out if self._flat else out.reshape(y.shape)

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.stats.nfe_backward += 1


def _col(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Host values [B] as a device column [B, 1] in ``like``'s dtype."""
    return torch.as_tensor(x, dtype=torch.float64).to(like.dtype).to(like.device)[:, None]


class Stages:
    """One batched step's stages ``k_j`` [B, N] and the same scaled by each sample's signed step,
    ``h_b k_j``, as rows [j, B, N]: a combination ``y + sum_j a_j h k_j`` is then one ``addmv``
    over the flat batch. Buffered (``buffered=True``, for solves that record no graph): the
    scaled rows live in one matrix [rows, B, N] allocated per solve and overwritten by the next
    step; otherwise a list stacked per use (out of place, so that autograd records it)."""

    def __init__(self, rows: int, like: torch.Tensor, buffered: bool):
        self.buf = like.new_empty(rows, *like.shape) if buffered else None
        self._rows = self.buf.unbind(0) if self.buf is not None else ()
        self._mats: dict[int, torch.Tensor] = {}
        self.ks: list[torch.Tensor] = []
        self.hks: list[torch.Tensor] = []
        self.h = np.zeros(0)
        self.hh = like

    def start(self, k0: torch.Tensor, h: np.ndarray) -> None:
        """Begin a step of signed sizes ``h`` [B] (host) from the first stage ``k0``."""
        self.ks, self.hks, self.h, self.hh = [], [], h, _col(h, k0)
        self.push(k0)

    def push(self, k: torch.Tensor) -> None:
        """Add the next stage ``k`` [B, N]."""
        j = len(self.ks)
        self.ks.append(k)
        self.hks.append(torch.mul(k, self.hh, out=self._rows[j]) if self.buf is not None
                        else k * self.hh)

    def rows(self, j: int) -> torch.Tensor:
        """The first ``j`` scaled stages, [j, B, N]."""
        return self.buf[:j] if self.buf is not None else torch.stack(self.hks[:j])

    def matrix(self, j: int) -> torch.Tensor:
        """The first ``j`` scaled stages as the columns of a matrix [B*N, j] (buffered: a view
        made once per solve)."""
        if self.buf is None:
            return torch.stack(self.hks[:j], 2).view(-1, j)
        mat = self._mats.get(j)
        if mat is None:
            mat = self._mats[j] = self.buf[:j].view(j, -1).T
        return mat

    def combine(self, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``y + sum_j a_j h k_j`` over the first ``len(a)`` stages, [B, N]."""
        return torch.addmv(y.view(-1), self.matrix(a.shape[0]), a).view(y.shape)


def more_stages(f: BatchField, co: Coefficients, st: Stages, t: np.ndarray,
                y: torch.Tensor, n: int) -> torch.Tensor:
    """Evaluate stages ``len(st.ks)..n-1`` of the step ``st`` began (per-sample starts ``t``
    [B], host float64) into ``st``; returns the input of the last one evaluated."""
    first = len(st.ks)
    times = f.times(t[None, :] + co.c[first:n, None] * st.h[None, :])  # [n - first, B, 1..]
    yi = y
    for i in range(first, n):
        yi = st.combine(y, co.rows[i])
        st.push(f.at(times[i - first], yi))
    return yi


def run_stages(f: BatchField, co: Coefficients, st: Stages, t: np.ndarray, h: np.ndarray,
               y: torch.Tensor, k0: torch.Tensor) -> torch.Tensor:
    """One batched step of signed sizes ``h`` [B] from the first stage ``k0`` [B, N], its
    stages into ``st``; returns y1 [B, N] (FSAL: the input of the last stage, else
    ``y + h sum b_i k_i``)."""
    st.start(k0, h)
    y1 = more_stages(f, co, st, t, y, co.tab.stages)
    return y1 if co.tab.fsal else st.combine(y, co.b)


def error_ratio(co: Coefficients, st: Stages, y: torch.Tensor, y1: torch.Tensor, rtol: float,
                atol: float) -> np.ndarray:
    """Per-sample mixed-norm error ratios [B] (accept when <= 1), the joint loop's formula
    ``|h| RMS(sum_i e_i k_i / (atol + rtol max(|y|, |y1|)))`` over each sample's N entries
    (DOP853: Hairer's combined 5th/3rd-order estimate, ``|h| e5^2 / sqrt(e5^2 + 0.01 e3^2)``,
    computed from the scaled stages ``h k_i``)."""
    s, n = co.tab.stages, y.shape[1]
    with torch.no_grad():
        scale = torch.maximum(y.abs(), y1.abs()).add_(atol / rtol)
        mat = st.matrix(s)
        if co.e35 is None:
            err = torch.mv(mat, co.e).view(y.shape).div_(scale)
            return torch.linalg.vector_norm(err, dim=1).double().cpu().numpy() / (
                rtol * math.sqrt(n))
        errs = torch.mm(mat, co.e35).view(*y.shape, 2).div_(scale.unsqueeze(2))
        sq = (torch.linalg.vector_norm(errs, dim=1) ** 2).double().cpu().numpy()
    e5, e3 = sq[:, 0], sq[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        err = e5 / (rtol * np.sqrt((e5 + 0.01 * e3) * n))
    return np.where((e5 == 0.0) & (e3 == 0.0), 0.0, err)


def dense_states(co: Coefficients, st: Stages, y: torch.Tensor, rows: np.ndarray,
                 thetas: np.ndarray) -> torch.Tensor:
    """States [P, N] of samples ``rows`` [P] at fractions ``thetas`` [P] of their steps, from the
    continuous extension ``y + h w(theta) @ K``."""
    idx = torch.as_tensor(rows, device=y.device)
    hk = st.rows(co.n_dense)[:, idx]  # [s_dense, P, N]
    return y[idx] + torch.einsum("ps,spn->pn", co.dense_weights(thetas), hk)


def initial_steps(f: BatchField, t0: np.ndarray, y0: torch.Tensor, f0: torch.Tensor,
                  order: int, rtol: float, atol: float, direction: float,
                  interval: np.ndarray) -> np.ndarray:
    """Hairer's automatic initial step (Hairer, Norsett, Wanner, Solving ODEs I, II.4) for each
    sample, with one batched evaluation: |h| [B] (time units), as
    :func:`odebench.solvers.control.initial_step` computes it for one sample."""
    root_n = math.sqrt(y0.shape[1])
    with torch.no_grad():
        scale = y0.abs().add_(atol / rtol)
        d0 = torch.linalg.vector_norm(y0 / scale, dim=1).double().cpu().numpy() / (rtol * root_n)
        d1 = torch.linalg.vector_norm(f0 / scale, dim=1).double().cpu().numpy() / (rtol * root_n)
        with np.errstate(divide="ignore", invalid="ignore"):
            h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
        h0 = np.minimum(h0, interval)
        f1 = f(t0 + direction * h0, y0 + _col(direction * h0, y0) * f0)
        d2 = (torch.linalg.vector_norm((f1 - f0) / scale, dim=1).double().cpu().numpy()
              / (rtol * root_n * h0))
    with np.errstate(divide="ignore"):
        h1 = np.where((d1 <= 1e-15) & (d2 <= 1e-15), np.maximum(1e-6, h0 * 1e-3),
                      (0.01 / np.maximum(d1, d2)) ** (1.0 / (order + 1)))
    return np.minimum(np.minimum(100 * h0, h1), interval)


@dataclass
class Piece:
    """Outputs one iteration produced: output indices ``i`` and samples ``b`` [P], with
    ``thetas`` [P] (NaN where the output is the step's end state y1, not a dense one)."""

    i: np.ndarray
    b: np.ndarray
    thetas: np.ndarray


@dataclass
class Iteration:
    """One iteration of the batched loop in which some sample accepted its step: per-sample
    start times ``t`` and signed sizes ``h`` [B] (0 where the sample did not move),
    ``accepted`` [B], the outputs it produced, and the batch state [B, N] at its start when it
    is a checkpoint (else None)."""

    t: np.ndarray
    h: np.ndarray
    accepted: np.ndarray
    piece: Piece
    y: torch.Tensor | None = None


@dataclass
class BatchedRun:
    """What :func:`integrate_batched` returns: the output pieces (state values [P, N] each,
    with their indices), the per-sample counters and the batched evaluation count."""

    pieces: list[tuple[Piece, torch.Tensor]]
    per_sample: PerSampleStats
    calls: int
    iterations: int = 0
    records: list[Iteration] = field(default_factory=list)


def step_outputs(co: Coefficients, f: BatchField, st: Stages, t: np.ndarray,
                 y: torch.Tensor, y1: torch.Tensor, piece: Piece) -> torch.Tensor:
    """The output values [P, N] of one iteration's ``piece``: dense ones from the continuous
    extension (evaluating DOP853's extra stages into ``st`` when a dense output needs them),
    the others the end states y1."""
    dense = ~np.isnan(piece.thetas)
    vals = y1[torch.as_tensor(piece.b, device=y.device)]
    if dense.any():
        if co.n_dense > len(st.ks):
            more_stages(f, co, st, t, y, co.n_dense)
        at = dense_states(co, st, y, piece.b[dense], piece.thetas[dense])
        idx = torch.as_tensor(np.nonzero(dense)[0], device=y.device)
        vals = vals.index_put((idx,), at)
    return vals


def integrate_batched(f: BatchField, co: Coefficients, y0: torch.Tensor, ts: np.ndarray,
                      rtol: float, atol: float, max_steps: int, first_step: float | None,
                      max_step: float, checkpoint_every: int | None = None) -> BatchedRun:
    """Adaptive integration of the flat batch ``y0`` [B, N] through per-sample output times
    ``ts`` [B, T] (float64, each row strictly monotone, all in one direction).

    ``max_steps`` is each sample's budget of attempted steps. With ``checkpoint_every`` the run
    records every iteration that moved a sample (and the state at every k-th of them).
    """
    n_samples = ts.shape[0]
    tab = co.tab
    s = tab.stages
    extra_nfe = co.n_dense - s
    direction = 1.0 if ts[0, -1] > ts[0, 0] else -1.0
    t, t_end = ts[:, 0].copy(), ts[:, -1].copy()
    interval = np.abs(t_end - t)
    eps, tiny = torch.finfo(y0.dtype).eps, torch.finfo(y0.dtype).tiny
    ctrl = PIController(k=tab.error_order + 1)
    k_ord = ctrl.k
    per = PerSampleStats.zeros(n_samples)
    nfe, n_steps, n_rej = per.nfe.numpy(), per.n_steps.numpy(), per.n_rejected.numpy()
    attempts = np.zeros(n_samples, np.int64)
    streak = np.zeros(n_samples, np.int64)
    err_prev = np.ones(n_samples)
    rejected_last = np.zeros(n_samples, bool)
    active = np.ones(n_samples, bool)
    next_out = np.ones(n_samples, np.int64)
    y = y0
    k0 = f(t, y)
    nfe += 1
    if first_step is None:
        h_abs = initial_steps(f, t, y, k0, tab.error_order, rtol, atol, direction, interval)
        nfe += 1
    else:
        h_abs = np.full(n_samples, float(first_step))
    h_abs = np.minimum(np.minimum(h_abs, max_step), interval)
    first = Piece(np.zeros(n_samples, np.int64), np.arange(n_samples), np.full(n_samples, np.nan))
    run = BatchedRun(pieces=[(first, y0)], per_sample=per, calls=0)
    st = Stages(co.n_dense, y0, buffered=not torch.is_grad_enabled())
    while active.any():
        _check_underflow(active, t, h_abs, eps, tiny, streak, tab.name)
        h = np.where(active, direction * h_abs, 0.0)
        landing = active & (direction * (t + h - t_end) >= 0)
        h = np.where(landing, t_end - t, h)
        attempts += active
        if (attempts > max_steps).any():
            _over_budget(int(np.argmax(attempts > max_steps)), max_steps, t, h, n_steps, n_rej,
                         tab.name)
        run.iterations += 1
        y1 = run_stages(f, co, st, t, h, y, k0)
        nfe += (s - 1) * active
        err = error_ratio(co, st, y, y1, rtol, atol)
        accepted = active & (err <= 1.0)  # NaN: rejected
        rejected = active & ~accepted
        if y1.requires_grad and not np.isfinite(err[rejected]).all():
            # a non-finite attempt in the graph would turn its zero cotangent into NaN
            y1 = run_stages(f, co, st, t, np.where(accepted, h, 0.0), y, k0)
        # rejections (the joint loop's PIController.reject_factor, per sample)
        finite = np.isfinite(err)
        streak = np.where(rejected, np.where(finite, 0, streak + 1), np.where(accepted, 0, streak))
        if (streak >= NONFINITE_STREAK).any():
            b = int(np.argmax(streak >= NONFINITE_STREAK))
            raise NonFiniteError(
                f"the state of sample {b} became non-finite at t={t[b]:.10g} with method "
                f"'{tab.name}' (batch_dims=1); {streak[b]} step-size reductions did not help")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rej_factor = np.where(finite, np.maximum(ctrl.min_factor,
                                                     ctrl.safety * err ** (-1.0 / k_ord)),
                                  ctrl.min_factor)
            acc_factor = np.where(err == 0.0, ctrl.max_factor,
                                  ctrl.safety * err ** (-ctrl.beta1_num / k_ord)
                                  * err_prev ** (ctrl.beta2_num / k_ord))
            acc_factor = np.minimum(ctrl.max_factor, np.maximum(ctrl.min_factor, acc_factor))
            acc_factor = np.where(rejected_last, np.minimum(1.0, acc_factor), acc_factor)
            new_h = np.where(accepted, np.minimum(np.abs(h) * acc_factor, max_step), h_abs)
            new_h = np.where(accepted & landing, np.maximum(new_h, np.abs(h)), new_h)
            h_abs = np.where(rejected, np.abs(h) * rej_factor, new_h)
        n_rej += rejected
        n_steps += accepted
        err_prev = np.where(accepted, np.maximum(err, 1e-4), err_prev)
        rejected_last = np.where(accepted, False, np.where(rejected, True, rejected_last))
        if not accepted.any():
            continue
        t_new = np.where(landing, t_end, t + h)
        piece = _passed_outputs(ts, t, h, t_new, accepted, next_out, direction)
        if len(piece.i):
            vals = step_outputs(co, f, st, t, y, y1, piece)
            if extra_nfe and (~np.isnan(piece.thetas)).any():
                nfe[np.unique(piece.b[~np.isnan(piece.thetas)])] += extra_nfe
            run.pieces.append((piece, vals))
        if checkpoint_every is not None:
            keep = len(run.records) % checkpoint_every == 0
            run.records.append(Iteration(t=t.copy(), h=np.where(accepted, h, 0.0),
                                         accepted=accepted.copy(), piece=piece,
                                         y=y if keep else None))
        mask = torch.as_tensor(accepted, device=y.device)[:, None]
        y = torch.where(mask, y1, y)
        k0 = torch.where(mask, st.ks[s - 1], k0)
        t = np.where(accepted, t_new, t)
        active = active & ~(accepted & landing)
    run.calls = f.calls
    return run


def _passed_outputs(ts: np.ndarray, t: np.ndarray, h: np.ndarray, t_new: np.ndarray,
                    accepted: np.ndarray, next_out: np.ndarray, direction: float) -> Piece:
    """The outputs in (t, t_new] of the accepted samples' steps (advances ``next_out`` in
    place): dense at theta = (t_out - t) / h, or the end state where t_out == t_new."""
    n_out = ts.shape[1]
    rows = np.arange(ts.shape[0])
    found_b, found_i = [], []
    while True:
        due = accepted & (next_out < n_out)
        due[due] = direction * (ts[rows[due], next_out[due]] - t_new[due]) <= 0
        if not due.any():
            break
        found_b.append(rows[due])
        found_i.append(next_out[due].copy())
        next_out[due] += 1
    b = np.concatenate(found_b) if found_b else rows[:0]
    i = np.concatenate(found_i) if found_i else rows[:0]
    with np.errstate(divide="ignore", invalid="ignore"):
        thetas = np.where(ts[b, i] == t_new[b], np.nan, (ts[b, i] - t[b]) / h[b])
    return Piece(i=i, b=b, thetas=thetas)


def _check_underflow(active: np.ndarray, t: np.ndarray, h_abs: np.ndarray, eps: float,
                     tiny: float, streak: np.ndarray, method: str) -> None:
    """Raise when an active sample's |h| is below the time resolution at its t (10 ulp)."""
    bad = active & (h_abs < 10 * eps * np.maximum(np.abs(t), tiny))
    if not bad.any():
        return
    b = int(np.argmax(bad))
    nonfinite = streak[b] > 0
    cls = NonFiniteError if nonfinite else StepSizeUnderflowError
    raise cls(f"step size underflow of sample {b} at t={t[b]:.10g} with method '{method}' "
              f"(batch_dims=1): step {h_abs[b]:.3g} is below the time resolution"
              + (" (the state became non-finite)" if nonfinite else "")
              + "; the solution may blow up there, or the problem is stiff or singular")


def _over_budget(b: int, max_steps: int, t: np.ndarray, h: np.ndarray, n_steps: np.ndarray,
                 n_rej: np.ndarray, method: str) -> None:
    raise MaxStepsExceededError(
        f"max_num_steps={max_steps} exceeded by sample {b} with method '{method}' "
        f"(batch_dims=1: the budget is per sample) at t={t[b]:.10g} (last step size "
        f"{h[b]:.3g}, {n_steps[b]} accepted, {n_rej[b]} rejected)")


def assemble(run: BatchedRun, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """The outputs [T, B, N] from the run's pieces (one differentiable ``index_put``)."""
    i = torch.as_tensor(np.concatenate([p.i for p, _ in run.pieces]), device=like.device)
    b = torch.as_tensor(np.concatenate([p.b for p, _ in run.pieces]), device=like.device)
    vals = torch.cat([v for _, v in run.pieces])
    out = like.new_zeros(n_out, *like.shape)
    if len(i) != out.shape[0] * out.shape[1]:  # every (output, sample) once: a loop invariant
        raise RuntimeError(f"batched loop produced {len(i)} outputs for {n_out} x {like.shape[0]}")
    return out.index_put((i, b), vals)


def replay(f: BatchField, co: Coefficients, records: list[Iteration], y: torch.Tensor
           ) -> tuple[torch.Tensor, list[tuple[Piece, torch.Tensor]]]:
    """Recompute the recorded iterations from ``y`` [B, N] under autograd, the samples that did
    not move with ``h = 0``: (state after the last, output pieces)."""
    s = co.tab.stages
    k0 = f(records[0].t, y)
    st = Stages(co.n_dense, y, buffered=False)
    pieces = []
    for r in records:
        y1 = run_stages(f, co, st, r.t, r.h, y, k0)
        if len(r.piece.i):
            pieces.append((r.piece, step_outputs(co, f, st, r.t, y, y1, r.piece)))
        mask = torch.as_tensor(r.accepted, device=y.device)[:, None]
        y = torch.where(mask, y1, y)
        k0 = torch.where(mask, st.ks[s - 1], k0)
    return y, pieces


@dataclass
class BatchedCall:
    """A validated batched solve: the user's ``func``, the batch ``y0`` [B, *state], output times
    ``ts`` [B, T] (host float64), the tableau, tolerances, options and gradient."""

    func: Func
    y0: torch.Tensor
    ts: np.ndarray
    method: str
    rtol: float
    atol: float
    max_steps: int
    first_step: float | None
    max_step: float
    checkpoint_every: int
    gradient: str
    params: list[torch.Tensor]

    def coefficients(self) -> Coefficients:
        return _coefficients(self.method, self.y0.dtype, self.y0.device)

    def field(self, stats: Stats | None = None) -> BatchField:
        return BatchField(self.func, self.y0.shape, self.y0.dtype, self.y0.device, stats)

    def integrate(self, f: BatchField, y0: torch.Tensor,
                  checkpoint_every: int | None = None) -> BatchedRun:
        return integrate_batched(f, self.coefficients(), y0, self.ts, self.rtol, self.atol,
                                 self.max_steps, self.first_step, self.max_step,
                                 checkpoint_every)


@functools.lru_cache(maxsize=32)
def _coefficients(method: str, dtype: torch.dtype, device: torch.device) -> Coefficients:
    return Coefficients(TABLEAUS[method], dtype, device)


def _fill(stats: Stats, run: BatchedRun) -> None:
    stats.nfe = run.calls
    stats.per_sample = run.per_sample
    stats.per_sample.n_iterations = run.iterations
    stats.n_steps = int(run.per_sample.n_steps.sum())
    stats.n_rejected = int(run.per_sample.n_rejected.sum())


def _flat(call: BatchedCall) -> torch.Tensor:
    return call.y0.reshape(call.y0.shape[0], -1)


def solve_backprop(call: BatchedCall, stats: Stats) -> torch.Tensor:
    """The batched loop with autograd recording every operation: ys [T, B, *state]."""
    f = call.field(stats)
    run = call.integrate(f, _flat(call).clone())
    _fill(stats, run)
    ys = assemble(run, call.ts.shape[1], _flat(call))
    if ys.requires_grad:
        def start_count(grad: torch.Tensor) -> torch.Tensor:
            stats.nfe_backward = 0  # each backward pass counts afresh
            return grad

        ys.register_hook(start_count)
    return ys.view(-1, *call.y0.shape)


class _Checkpointed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: BatchedCall, stats: Stats, y0: torch.Tensor, *params: torch.Tensor):
        f = call.field()
        y_flat = y0.detach().reshape(y0.shape[0], -1).clone()
        _guard_first_evaluation(call, f, y_flat)
        with torch.no_grad():
            run = call.integrate(f, y_flat, call.checkpoint_every)
        _fill(stats, run)
        stats.saved_bytes = sum(r.y.numel() * r.y.element_size() for r in run.records
                                if r.y is not None)
        ctx.call, ctx.stats, ctx.records = call, stats, run.records
        ctx.versions = [x._version for x in (y0, *params)]
        return assemble(run, call.ts.shape[1], y_flat).view(-1, *call.y0.shape)

    @staticmethod
    def backward(ctx, grad_ys: torch.Tensor):
        call: BatchedCall = ctx.call
        if torch.is_grad_enabled():
            raise InvalidInputError(
                "gradient='checkpointed' with batch_dims=1 does not support double backward; "
                "use gradient='backprop'")
        if [x._version for x in (call.y0, *call.params)] != ctx.versions:
            raise InvalidInputError(
                "y0 or a parameter was modified in place between the batched forward solve and "
                "backward(); solve again after modifying it")
        records: list[Iteration] = ctx.records
        grad = grad_ys.reshape(grad_ys.shape[0], grad_ys.shape[1], -1)
        f = call.field()
        co = call.coefficients()
        guard = CapturedGuard(call.params, "checkpointed")
        a = torch.zeros_like(grad[0])
        grad_params = [torch.zeros_like(p) for p in call.params]
        every = call.checkpoint_every
        for start in reversed(range(0, len(records), every)):
            segment = records[start: start + every]
            with torch.enable_grad():
                y_s = segment[0].y.detach().requires_grad_(True)
                y_e, pieces = replay(f, co, segment, y_s)
                tensors = [y_e, *(v for _, v in pieces)]
                guard.watch(tensors, [y_s], lambda seg=segment, ys=y_s: _replayed(f, co, seg, ys))
                cots = [a, *(grad[torch.as_tensor(p.i), torch.as_tensor(p.b)] for p, _ in pieces)]
                grads = torch.autograd.grad(tensors, [y_s, *call.params], cots,
                                            allow_unused=True)
            a = grads[0] if grads[0] is not None else torch.zeros_like(a)
            for acc, g in zip(grad_params, grads[1:]):
                if g is not None:
                    acc.add_(g)
        ctx.stats.nfe_backward = f.calls
        ctx.stats.n_steps_backward = len(records)
        return (None, None, (a + grad[0]).view(call.y0.shape), *grad_params)


def _replayed(f: BatchField, co: Coefficients, records: list[Iteration],
              y: torch.Tensor) -> list[torch.Tensor]:
    y_e, pieces = replay(f, co, records, y)
    return [y_e, *(v for _, v in pieces)]


def _guard_first_evaluation(call: BatchedCall, f: BatchField, y: torch.Tensor) -> None:
    """Refuse tensors requiring grad that ``func`` reaches besides ``params`` (they would get no
    gradient from ``checkpointed``), with one recorded evaluation at the initial times."""
    with torch.enable_grad(), _CreatedTensors() as created:
        out = f(call.ts[:, 0], y)
    CapturedGuard(call.params, "checkpointed").check([out], [y], created.ids)


def solve_checkpointed(call: BatchedCall, stats: Stats) -> torch.Tensor:
    """Forward without a graph, keeping the per-sample steps; backward replays them."""
    return _Checkpointed.apply(call, stats, call.y0, *call.params)


def solve(call: BatchedCall, stats: Stats) -> torch.Tensor:
    """Run ``call`` with its gradient method (plain backprop when nothing is differentiated):
    ys [T, B, *state]."""
    needs_grad = torch.is_grad_enabled() and (
        call.y0.requires_grad or any(p.requires_grad for p in call.params))
    if call.gradient == "checkpointed" and needs_grad:
        return solve_checkpointed(call, stats)
    return solve_backprop(call, stats)

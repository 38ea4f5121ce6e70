"""Per-sample adaptive stepping for a batch of independent ODEs (``batch_dims=1``).

Every sample ``b`` of ``y0`` [B, *S] has its own time, step size, error estimate, accept/reject
decision, PI controller state, step counters and (optionally) output times ``t[b]``: a stiff or
fast sample no longer drags the others down to its step size, as a joint solve (one step size,
one error norm over the whole batch) does (the feature of torchode: Lienen & Guennemann,
"torchode: A Parallel ODE Solver for PyTorch", 2022). All samples advance together, one
vectorised Runge-Kutta step per round; a sample that has finished, or whose step was rejected,
keeps its state. The tableaus, error norm and controller constants are the explicit loop's.

Outputs come from each method's continuous extension; gradients by autograd through the loop
(``gradient="backprop"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from odebench.errors import InvalidInputError, MaxStepsExceededError, StepSizeUnderflowError
from odebench.solution import Solution, Stats
from odebench.solvers.control import PIController
from odebench.solvers.options import SolverOptions
from odebench.solvers.tableaus import TABLEAUS

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class BatchedStats(Stats):
    """:class:`Stats` of a per-sample solve: ``n_steps``/``n_rejected`` are totals over the batch,
    ``steps_per_sample``/``rejected_per_sample`` the counts of each sample; ``nfe`` counts calls of
    ``func`` (each evaluates the whole batch); ``rounds`` the vectorised steps taken."""

    steps_per_sample: list[int] = field(default_factory=list)
    rejected_per_sample: list[int] = field(default_factory=list)
    rounds: int = 0


def solve_batched(func: Func, y0: torch.Tensor, t: torch.Tensor, method: str = "dopri5",
                  rtol: float = 1e-7, atol: float = 1e-9, options: SolverOptions | None = None
                  ) -> Solution:
    """Solve ``B`` independent problems ``dy_b/dt = func(t, y)_b`` with one step size each.

    Args:
        func: ``func(t, y) -> dy/dt`` with ``t`` of shape [B] (each sample's own time, the state's
            dtype) and ``y`` [B, *S]; sample ``b`` of the result may depend only on sample ``b``.
        y0: [B, *S], float32 or float64.
        t: output times, [T] (shared) or [B, T] (one row per sample), each row strictly
            monotone, all rows in the same direction.
        method: an adaptive explicit method whose dense output needs no extra stages (bosh3,
            dopri5, tsit5).
        rtol, atol: tolerances of each sample's own mixed RMS error norm.
        options: max_num_steps (per sample), first_step, max_step.

    Returns:
        ``Solution(ts=t, ys [T, B, *S], stats=BatchedStats)``.
    """
    opts = options or SolverOptions()
    tab = TABLEAUS.get(method)
    if tab is None or not tab.adaptive or tab.dense is None or len(tab.c_extra):
        raise InvalidInputError(
            f"batch_dims=1 supports the methods bosh3, dopri5, tsit5, got '{method}'")
    if y0.ndim < 1 or y0.shape[0] == 0:
        raise InvalidInputError(f"batch_dims=1 needs y0 of shape [B, ...], got {tuple(y0.shape)}")
    batch = y0.shape[0]
    times = t.detach().to(torch.float64, copy=True)
    times = times.expand(batch, -1) if times.ndim == 1 else times
    if times.shape[0] != batch or times.shape[1] < 2:
        raise InvalidInputError(
            f"t must have shape [T] or [B={batch}, T] with T >= 2, got {tuple(t.shape)}")
    steps = times.diff(dim=1)
    direction = 1.0 if bool((steps > 0).all()) else -1.0
    if not bool((direction * steps > 0).all()):
        raise InvalidInputError("each row of t must be strictly monotone, all in one direction")
    return _Loop(func, y0, times, direction, tab, rtol, atol, opts).run(t)


class _Loop:
    def __init__(self, func: Func, y0: torch.Tensor, times: torch.Tensor, direction: float,
                 tab, rtol: float, atol: float, opts: SolverOptions):
        self.func, self.tab, self.rtol, self.atol, self.opts = func, tab, rtol, atol, opts
        self.shape = y0.shape
        self.batch, self.n = y0.shape[0], y0[0].numel()
        self.dtype, self.device = y0.dtype, y0.device
        self.y0 = y0.reshape(self.batch, self.n)
        self.times, self.direction = times.to(self.device), direction
        as_t = dict(dtype=self.dtype, device=self.device)
        self.a = [torch.as_tensor(tab.a[i, :i], **as_t) for i in range(tab.stages)]
        self.b = torch.as_tensor(tab.b, **as_t)
        self.e = torch.as_tensor(tab.b_error, **as_t)
        self.dense = torch.as_tensor(tab.dense, **as_t)  # [s, q]
        self.c = [float(c) for c in tab.c]
        ctrl = PIController(k=tab.error_order + 1)
        self.k_exp = ctrl.k
        self.ctrl = ctrl
        self.nfe = 0

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = self.func(t.to(self.dtype), y.view(self.shape))
        if not isinstance(out, torch.Tensor) or out.shape != self.shape:
            raise InvalidInputError(f"func must return a tensor of shape {tuple(self.shape)}")
        return out.reshape(self.batch, self.n)

    def rms(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x, dim=1) / math.sqrt(self.n)

    def initial_step(self, t: torch.Tensor, y: torch.Tensor, f0: torch.Tensor,
                     span: torch.Tensor) -> torch.Tensor:
        """Hairer's initial step (as :func:`odebench.solvers.control.initial_step`), per sample."""
        with torch.no_grad():
            y, f0 = y.detach(), f0.detach()
            scale = self.atol + self.rtol * y.abs()
            d0, d1 = self.rms(y / scale), self.rms(f0 / scale)
            h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6),
                             0.01 * d0 / d1.clamp_min(1e-300)).double().minimum(span)
            f1 = self.f(t + self.direction * h0, y + (self.direction * h0).to(y)[:, None] * f0)
            d2 = (self.rms((f1 - f0) / scale).double() / h0)
            big = torch.maximum(d1.double(), d2)
            h1 = torch.where(big <= 1e-15, (h0 * 1e-3).clamp_min(1e-6),
                             (0.01 / big.clamp_min(1e-300)) ** (1.0 / (self.tab.error_order + 1)))
            return torch.minimum(torch.minimum(100 * h0, h1), span)

    def run(self, t_user: torch.Tensor) -> Solution:
        batch, times, direction = self.batch, self.times, self.direction
        n_out = times.shape[1]
        t = times[:, 0].clone()
        t_end = times[:, -1]
        y = self.y0
        k0 = self.f(t, y)
        span = (t_end - t).abs()
        h_abs = (torch.full_like(t, self.opts.first_step) if self.opts.first_step is not None
                 else self.initial_step(t, y, k0, span))
        h_abs = h_abs.clamp_max(self.opts.max_step)
        err_prev = torch.ones_like(t)
        rejected_last = torch.zeros(batch, dtype=torch.bool, device=self.device)
        next_out = torch.ones(batch, dtype=torch.long, device=self.device)
        steps = torch.zeros(batch, dtype=torch.long, device=self.device)
        rejects = torch.zeros_like(steps)
        out_idx, out_b, out_val = [torch.zeros(batch, dtype=torch.long, device=self.device)], \
            [torch.arange(batch, device=self.device)], [y]
        active = torch.ones(batch, dtype=torch.bool, device=self.device)
        rounds = 0
        eps = torch.finfo(self.dtype).eps
        while bool(active.any()):
            rounds += 1
            attempts = steps + rejects
            if bool((attempts[active] >= self.opts.max_num_steps).any()):
                bad = int(torch.nonzero(active & (attempts >= self.opts.max_num_steps))[0, 0])
                raise MaxStepsExceededError(
                    f"max_num_steps={self.opts.max_num_steps} exceeded by sample {bad} with "
                    f"method '{self.tab.name}' at t={float(t[bad]):.10g} (step size "
                    f"{float(h_abs[bad]):.3g}, {int(steps[bad])} accepted)")
            tiny = active & (h_abs < 10 * eps * t.abs().clamp_min(1e-300))
            if bool(tiny.any()):
                bad = int(torch.nonzero(tiny)[0, 0])
                raise StepSizeUnderflowError(
                    f"step size underflow for sample {bad} at t={float(t[bad]):.10g} with method "
                    f"'{self.tab.name}': step {float(h_abs[bad]):.3g}")
            landing = direction * (t + direction * h_abs - t_end) >= 0
            h = torch.where(landing, t_end - t, direction * h_abs)
            h = torch.where(active, h, torch.zeros_like(h))
            ks, y1 = self.stages(t, y, h, k0)
            err = self.error(ks, h, y, y1)
            accept = active & (err <= 1.0)
            # outputs inside (t, t + h] of the accepted samples, from the continuous extension
            t_new = torch.where(landing, t_end, t + h)
            while True:
                idx = next_out.clamp_max(n_out - 1)
                t_o = times.gather(1, idx[:, None])[:, 0]
                hit = accept & (next_out < n_out) & (direction * (t_o - t_new) <= 0)
                if not bool(hit.any()):
                    break
                theta = torch.where(hit, (t_o - t) / torch.where(hit, h, torch.ones_like(h)),
                                    torch.zeros_like(h))
                sel = torch.nonzero(hit)[:, 0]
                out_idx.append(next_out[sel])
                out_b.append(sel)
                out_val.append(self.dense_at(y[sel], h[sel], [k[sel] for k in ks], theta[sel]))
                next_out = torch.where(hit, next_out + 1, next_out)
            keep = accept[:, None]
            y = torch.where(keep, y1, y)
            k0 = torch.where(keep, ks[-1], k0) if self.tab.fsal else torch.where(
                keep, self.f(t_new, y), k0)
            t = torch.where(accept, t_new, t)
            steps = steps + accept.long()
            rejects = rejects + (active & ~accept).long()
            h_abs, err_prev, rejected_last = self.control(h, h_abs, err, accept, active, landing,
                                                          err_prev, rejected_last)
            active = active & ~(accept & landing)
        ys = torch.zeros(n_out, batch, self.n, dtype=self.dtype, device=self.device)
        ys = ys.index_put((torch.cat(out_idx), torch.cat(out_b)), torch.cat(out_val))
        stats = BatchedStats(nfe=self.nfe, n_steps=int(steps.sum()), n_rejected=int(rejects.sum()),
                             steps_per_sample=steps.tolist(), rejected_per_sample=rejects.tolist(),
                             rounds=rounds)
        return Solution(ts=t_user, ys=ys.view(n_out, *self.shape), stats=stats)

    def stages(self, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, k0: torch.Tensor
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One vectorised step of every sample: (stages [s x [B, N]], y1 [B, N])."""
        hy = h.to(self.dtype)[:, None]
        ks = [k0]
        yi = y
        for i in range(1, len(self.c)):
            yi = y + hy * torch.einsum("j,jbn->bn", self.a[i], torch.stack(ks))
            ks.append(self.f(t + self.c[i] * h, yi))
        y1 = yi if self.tab.fsal else y + hy * torch.einsum("j,jbn->bn", self.b, torch.stack(ks))
        return ks, y1

    def error(self, ks: list[torch.Tensor], h: torch.Tensor, y: torch.Tensor,
              y1: torch.Tensor) -> torch.Tensor:
        """Each sample's error ratio (accept when <= 1), float64 [B]."""
        with torch.no_grad():
            est = h.to(self.dtype)[:, None] * torch.einsum("j,jbn->bn", self.e,
                                                          torch.stack([k.detach() for k in ks]))
            scale = self.atol + self.rtol * torch.maximum(y.detach().abs(), y1.detach().abs())
            return self.rms(est / scale).double()

    def dense_at(self, y: torch.Tensor, h: torch.Tensor, ks: list[torch.Tensor],
                 theta: torch.Tensor) -> torch.Tensor:
        """States at ``t + theta h`` (per sample theta [m]) from the continuous extension."""
        powers = torch.stack([theta ** (j + 1) for j in range(self.dense.shape[1])], 1)
        weights = powers.to(self.dtype) @ self.dense.T  # [m, s]
        return y + h.to(self.dtype)[:, None] * torch.einsum("ms,smn->mn", weights, torch.stack(ks))

    def control(self, h: torch.Tensor, h_abs: torch.Tensor, err: torch.Tensor,
                accept: torch.Tensor, active: torch.Tensor, landing: torch.Tensor,
                err_prev: torch.Tensor, rejected_last: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The PI controller of :class:`PIController`, per sample."""
        c, k = self.ctrl, self.k_exp
        safe_err = err.clamp_min(1e-300)
        grow = (c.safety * safe_err ** (-c.beta1_num / k) * err_prev ** (c.beta2_num / k))
        grow = torch.where(err == 0, torch.full_like(grow, c.max_factor), grow)
        grow = grow.clamp(c.min_factor, c.max_factor)
        grow = torch.where(rejected_last, grow.clamp_max(1.0), grow)
        finite = torch.isfinite(err)
        shrink = torch.where(finite, (c.safety * safe_err ** (-1.0 / k)).clamp_min(c.min_factor),
                             torch.full_like(err, c.min_factor))
        h_acc = (h.abs() * grow).clamp_max(self.opts.max_step)
        h_acc = torch.where(landing, torch.maximum(h_acc, h.abs()), h_acc)
        h_new = torch.where(accept, h_acc, torch.where(active, h.abs() * shrink, h_abs))
        err_prev = torch.where(accept, err.clamp_min(1e-4), err_prev)
        rejected_last = torch.where(active, ~accept, rejected_last)
        return h_new, err_prev, rejected_last

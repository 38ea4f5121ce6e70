"""Study ``per_sample``: one step size for the whole batch (odebench's joint solve) against a step
size per sample (``solve(..., batch_dims=1)``), beside torchode, which steps per sample natively.

The batch is Van der Pol, ``x'' = mu_b (1 - x^2) x' - x``, ``y0 = (2, 0)``, with
``mu_b = 25 (b + 1) / B`` for b = 0..B-1 (B = 1: mu = 25), over t in [0, T] with ``N_POINTS``
shared output times; dopri5, rtol=1e-6, atol=1e-8, forward solve. Issue 15 names the setup after
torchode's paper (Lienen & Guennemann, "torchode: A Parallel ODE Solver for PyTorch", 2022):
mu up to 25, batch 2^0 .. 2^10; the spread of mu, y0, T and the tolerances are odebench's choice.
Each row is one (backend, mode, B): steps per sample (mean, min and max over the batch, in
``extra``), rejected steps, the accepted steps summed over the batch (``steps``), the batched
vector-field calls (``nfe_forward``: what the wall follows, every call evaluating the whole
batch), the evaluations the samples' own steps needed (``extra.sample_nfe_total``; joint: calls
x B), the median wall of ``n_repeats`` solves (after one untimed run) with its IQR, and
``sol_error``: the relative L2 error at T over the batch against a per-sample dop853 solve at
rtol=atol=1e-12.

torchode runs ``AutoDiffAdjoint(Dopri5, IntegralController)`` with the same tolerances; its
controller is integral, not PI, and its NFE counter counts batched calls.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from odebench.api import solve
from odebench.backends.base import DTYPES
from odebench.measure.timing import median_iqr, median_wall, pinned_threads
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, point

NAME = "per_sample"
MU_MAX = 25.0
T_END = 50.0
N_POINTS = 11
METHOD = "dopri5"
RTOL, ATOL = 1e-6, 1e-8
REF_TOL = 1e-12
QUICK_BATCHES = (1, 4, 16, 64)
FULL_BATCHES = tuple(2 ** k for k in range(11))
#: (backend, mode) pairs of the grid.
MODES = (("odebench", "joint"), ("odebench", "per_sample"), ("torchode", "per_sample"))


class BatchVdP(torch.nn.Module):
    """Van der Pol for a batch: ``mu`` [B, 1]; ``t`` is unused (autonomous), so it may be 0-d
    (joint solve) or one time per sample."""

    def __init__(self, mu: torch.Tensor):
        super().__init__()
        self.register_buffer("mu", mu)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, v = y[:, :1], y[:, 1:]
        return torch.cat([v, self.mu * (1.0 - x * x) * v - x], dim=1)


def batch_problem(batch: int, dtype: torch.dtype, device: str
                  ) -> tuple[BatchVdP, torch.Tensor, torch.Tensor]:
    """(field, y0 [B, 2], t [N_POINTS]) of the study's batch of size ``batch``."""
    mu = MU_MAX * torch.arange(1, batch + 1, dtype=dtype, device=device)[:, None] / batch
    y0 = torch.tensor([2.0, 0.0], dtype=dtype, device=device).repeat(batch, 1)
    t = torch.linspace(0.0, T_END, N_POINTS, dtype=dtype, device=device)
    return BatchVdP(mu), y0, t


@functools.lru_cache(maxsize=16)
def reference_end(batch: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """y(T) [B, 2] from a per-sample float64 dop853 solve at rtol=atol=1e-12."""
    func, y0, t = batch_problem(batch, torch.float64, device)
    with torch.no_grad():
        ys = solve(func, y0, t, method="dop853", rtol=REF_TOL, atol=REF_TOL, batch_dims=1,
                   options={"max_num_steps": 1_000_000}).ys
    return ys[-1].to(dtype)


def grid(settings: Settings) -> list[Row]:
    batches = QUICK_BATCHES if settings.mode == "quick" else FULL_BATCHES
    backends = available_backends(("odebench", "torchode"))
    return [point(NAME, settings, "vdp", backend, METHOD, rtol=RTOL, atol=ATOL, T=T_END,
                  batch=batch, state_dim=2,
                  params={"batching": mode, "mu": f"{MU_MAX:g} (b + 1) / B", "n_points": N_POINTS})
            for batch in batches for backend, mode in MODES if backend in backends]


def _odebench_run(row: Row, func: BatchVdP, y0: torch.Tensor, t: torch.Tensor):
    batch_dims = 1 if row.params["batching"] == "per_sample" else None

    def run():
        with torch.no_grad():
            return solve(func, y0, t, method=row.method, rtol=row.rtol, atol=row.atol,
                         batch_dims=batch_dims)

    sol = run()
    per = sol.stats.per_sample
    if per is None:  # joint: every sample takes every step
        steps = torch.full((row.batch,), sol.stats.n_steps)
        rejected = torch.full((row.batch,), sol.stats.n_rejected)
        sample_nfe = sol.stats.nfe * row.batch
    else:
        steps, rejected, sample_nfe = per.n_steps, per.n_rejected, int(per.nfe.sum())
    return run, sol.ys[-1], steps, rejected, sol.stats.nfe, sample_nfe, None


def _torchode_run(row: Row, func: BatchVdP, y0: torch.Tensor, t: torch.Tensor):
    import torchode

    from odebench.backends.torchode_backend import _check_status

    term = torchode.ODETerm(func)
    step = torchode.Dopri5(term=term)
    controller = torchode.IntegralController(atol=row.atol, rtol=row.rtol, term=term).to(
        device=y0.device, dtype=torch.float64)
    solver = torchode.AutoDiffAdjoint(step, controller)
    t_eval = t.repeat(row.batch, 1)
    problem = torchode.InitialValueProblem(y0=y0, t_start=t_eval[:, 0], t_end=t_eval[:, -1],
                                           t_eval=t_eval)

    def run():
        with torch.no_grad():
            return solver.solve(problem)

    sol = run()
    _check_status(sol.status, sol.stats)
    steps = sol.stats["n_accepted"].cpu()
    rejected = sol.stats["n_steps"].cpu() - steps
    return (run, sol.ys[:, -1], steps, rejected, int(sol.stats["n_f_evals"].max()), None,
            {"peer_method": "Dopri5", "controller": "IntegralController"})


def execute(row: Row, settings: Settings) -> Row:
    dtype = DTYPES[settings.dtype]
    func, y0, t = batch_problem(row.batch, dtype, settings.device)
    func = func.to(settings.device)
    repeats = 3 if settings.mode == "quick" else 5
    runner = _torchode_run if row.backend == "torchode" else _odebench_run
    with pinned_threads(settings.threads):
        run, y_end, steps, rejected, calls, sample_nfe, peer = runner(row, func, y0, t)
        wall, walls = median_wall(run, repeats, warmup=0, sync_cuda=y0.is_cuda)
    ref = reference_end(row.batch, dtype, settings.device)
    err = float(torch.linalg.vector_norm(y_end - ref) / torch.linalg.vector_norm(ref))
    steps_f = steps.double()
    extra = {"batching": row.params["batching"], "steps_per_sample_mean": float(steps_f.mean()),
             "steps_per_sample_max": int(steps.max()), "steps_per_sample_min": int(steps.min()),
             "rejected_per_sample_mean": float(rejected.double().mean()),
             "sample_nfe_total": sample_nfe, "mu_max": MU_MAX}
    if peer is not None:
        extra.update({"controller": peer["controller"]})
    _, iqr = median_iqr(walls)
    return dataclasses.replace(
        row, sol_error=err, nfe_forward=calls, steps=int(steps.sum()),
        rejected=int(rejected.sum()), wall_forward_s=wall, wall_forward_iqr_s=iqr,
        n_repeats=len(walls), peer_method=peer["peer_method"] if peer else None, extra=extra)


STUDY = Study(NAME, "steps per sample and wall: joint vs per-sample step sizes on a Van der Pol "
                    "batch (mu up to 25), beside torchode", grid, execute)

"""Study ``per_sample_steps``: steps per sample of a batch of Van der Pol oscillators with mu
spread over the batch, solved jointly (one step size, one error norm for the batch) and per
sample (``batch_dims=1``), beside torchode (per-sample step control by design): dopri5,
rtol 1e-6, atol 1e-8, forward solve on [0, 10], float64.

torchode's setup (Lienen & Guennemann, "torchode: A Parallel ODE Solver for PyTorch", 2022,
the Van der Pol batch with mu up to 25): here mu = linspace(1, 25, B) for B = 2^0..2^k (B=1:
mu = 25). Each row: ``steps`` the mean accepted steps per sample, ``rejected`` the mean rejected;
``extra`` holds the maximum per sample, the rounds of vectorised steps and the mean |y| error
against the per-sample solve of each sample alone at rtol 1e-10.
"""

from __future__ import annotations

import dataclasses
import statistics

import torch

from odebench.backends.torchode_backend import TorchodeBackend
from odebench.compat import solve
from odebench.measure.timing import pinned_threads, timed
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import point

NAME = "per_sample_steps"
RTOL, ATOL, T_END = 1e-6, 1e-8, 10.0
MODES = ("joint", "per_sample", "torchode")


def batches(settings: Settings) -> list[int]:
    return [2**k for k in range(0, 7 if settings.mode == "quick" else 11, 2)]


def grid(settings: Settings) -> list[Row]:
    rows = []
    for batch in batches(settings):
        for mode in MODES:
            if mode == "torchode" and not TorchodeBackend().available()[0]:
                continue
            rows.append(point(NAME, settings, "vdp", "torchode" if mode == "torchode"
                              else "odebench", "dopri5", rtol=RTOL, atol=ATOL, batch=batch,
                              T=T_END, params={"mode": mode, "mu": [1.0, 25.0]}))
    return rows


def _field(mu: torch.Tensor):
    def vdp(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([y[..., 1], mu * (1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]], -1)

    return vdp


def _setup(batch: int, dtype: torch.dtype, device: str):
    mu = (torch.linspace(1.0, 25.0, batch, dtype=dtype, device=device) if batch > 1
          else torch.full((1,), 25.0, dtype=dtype, device=device))
    y0 = torch.tensor([2.0, 0.0], dtype=dtype, device=device).repeat(batch, 1)
    t = torch.linspace(0.0, T_END, 11, dtype=dtype, device=device)
    return mu, y0, t


def _run(mode: str, mu: torch.Tensor, y0: torch.Tensor, t: torch.Tensor
         ) -> tuple[torch.Tensor, list[int], list[int], int | None]:
    """(ys [T, B, 2], accepted steps per sample, rejected per sample, rounds)."""
    if mode == "torchode":
        import torchode

        term = torchode.ODETerm(lambda t_, y: _field(mu)(t_, y))
        step = torchode.Dopri5(term=term)
        controller = torchode.IntegralController(atol=ATOL, rtol=RTOL, term=term)
        solver = torchode.AutoDiffAdjoint(step, controller)
        sol = solver.solve(torchode.InitialValueProblem(y0=y0, t_eval=t.expand(len(y0), -1)))
        accepted = sol.stats["n_accepted"].tolist()
        attempted = sol.stats["n_steps"].tolist()
        return (sol.ys.transpose(0, 1), accepted, [a - b for a, b in zip(attempted, accepted)],
                None)
    sol = solve(_field(mu), y0, t, rtol=RTOL, atol=ATOL, batch_dims=int(mode == "per_sample"))
    if mode == "per_sample":
        return (sol.ys, sol.stats.steps_per_sample, sol.stats.rejected_per_sample,
                sol.stats.rounds)
    batch = len(y0)
    return sol.ys, [sol.stats.n_steps] * batch, [sol.stats.n_rejected] * batch, sol.stats.n_steps


def execute(row: Row, settings: Settings) -> Row:
    dtype = getattr(torch, settings.dtype)
    mu, y0, t = _setup(row.batch, dtype, settings.device)
    mode = row.params["mode"]
    with torch.no_grad(), pinned_threads(settings.threads):
        ys, accepted, rejected, rounds = _run(mode, mu, y0, t)
        walls = [timed(lambda: _run(mode, mu, y0, t), settings.device != "cpu")[1]
                 for _ in range(3 if settings.mode == "quick" else 7)]
        truth = solve(_field(mu), y0, t, rtol=1e-10, atol=1e-12, batch_dims=1).ys
    error = float((ys[-1] - truth[-1]).norm() / truth[-1].norm())
    return dataclasses.replace(
        row, steps=round(statistics.mean(accepted)), rejected=round(statistics.mean(rejected)),
        wall_forward_s=statistics.median(walls), sol_error=error,
        extra={"steps_mean": statistics.mean(accepted), "steps_max": max(accepted),
               "rejected_mean": statistics.mean(rejected), "rounds": rounds})


STUDY = Study(NAME, "steps per sample: joint vs per-sample step sizes on a Van der Pol batch",
              grid, execute)

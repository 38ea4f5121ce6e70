"""Study ``overhead``: solver-loop overhead ratio = wall / (NFE x time of one vector-field
evaluation), 1 thread, dopri5, forward solve, on MLP fields (state 2, batch 1, width 32) and
(state 32, batch 256, width 64): odebench vs torchdiffeq vs torchode, side by side in one run.

A ratio of 1 means the loop costs nothing beyond the evaluations themselves.
"""

from __future__ import annotations

import dataclasses

import torch

from odebench.backends.base import DTYPES
from odebench.measure.timing import median_wall, pinned_threads
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point, problem_of

NAME = "overhead"
BACKENDS = ("odebench", "torchdiffeq", "torchode")
PROBLEMS = ("mlp_small", "mlp_large")
RTOL, ATOL = 1e-6, 1e-8


def grid(settings: Settings) -> list[Row]:
    return [point(NAME, settings, problem, backend, "dopri5", rtol=RTOL, atol=ATOL)
            for problem in PROBLEMS for backend in available_backends(BACKENDS)]


def evaluation_time(row: Row, settings: Settings, calls: int = 200) -> float:
    """Median seconds of one evaluation of the row's vector field (no autograd)."""
    problem, _ = problem_of(row)
    problem = problem.to(DTYPES[settings.dtype], settings.device)
    func = problem.func()
    t = torch.zeros((), dtype=problem.y0.dtype, device=problem.y0.device)
    y = problem.y0

    def many() -> None:
        with torch.no_grad():
            for _ in range(calls):
                func(t, y)

    with pinned_threads(settings.threads):
        median, _ = median_wall(many, repeats=7, warmup=2)
    return median / calls


def execute(row: Row, settings: Settings) -> Row:
    repeats = 7 if settings.mode == "quick" else 21
    eval_s = evaluation_time(row, settings)
    measured = measure(row, settings, repeats=repeats)
    if measured.status != "ok" or not measured.nfe_forward or not measured.wall_forward_s:
        return measured
    per_nfe = measured.wall_forward_s / measured.nfe_forward
    extra = {**measured.extra, "eval_s": eval_s}
    return dataclasses.replace(measured, wall_per_nfe_s=per_nfe, overhead_ratio=per_nfe / eval_s,
                               extra=extra)


STUDY = Study(NAME, "solver-loop overhead ratio on MLP fields", grid, execute)

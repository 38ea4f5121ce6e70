"""Study ``overhead``: solver-loop overhead ratio = wall / (NFE x time of one vector-field
evaluation), 1 thread, dopri5, forward solve, on MLP fields (state 2, batch 1, width 32) and
(state 32, batch 256, width 64): odebench vs torchdiffeq vs torchode, side by side in one run.

A ratio of 1 means the loop costs nothing beyond the evaluations themselves. The solve and the
evaluations are timed alternately in one loop (medians of each), so that a busy neighbour on a
shared machine slows both alike; NFE comes from the instrumented run.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics

import torch

from odebench import backends
from odebench.backends.base import DTYPES, bare_forward_seconds
from odebench.measure.timing import median_iqr, pinned_threads, timed
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point, run_spec

NAME = "overhead"
BACKENDS = ("odebench", "torchdiffeq", "torchode")
PROBLEMS = ("mlp_small", "mlp_large")
RTOL, ATOL = 1e-6, 1e-8


def grid(settings: Settings) -> list[Row]:
    return [point(NAME, settings, problem, backend, "dopri5", rtol=RTOL, atol=ATOL)
            for problem in PROBLEMS for backend in available_backends(BACKENDS)]


def paired_timing(row: Row, settings: Settings, nfe: int, repeats: int
                  ) -> tuple[tuple[float, float | None], float]:
    """((median, IQR) seconds of a bare forward solve, median seconds of one vector-field
    evaluation), timed alternately in one loop — a solve, then ``nfe`` evaluations of the same field at the
    initial state — so that both see the same machine state (these machines are shared)."""
    spec = dataclasses.replace(run_spec(row, settings), gradient=None)
    problem = spec.problem.to(DTYPES[settings.dtype], settings.device)
    backend = backends.get(row.backend)
    func = problem.func()
    t0 = torch.zeros((), dtype=problem.y0.dtype, device=problem.y0.device)
    y0 = problem.y0

    def evaluations() -> None:
        with torch.no_grad():
            for _ in range(nfe):
                func(t0, y0)

    solves, evals = [], []
    with pinned_threads(settings.threads):
        bare_forward_seconds(backend, spec, problem)  # warm-up
        evaluations()
        gc.collect()
        for _ in range(repeats):
            solves.append(bare_forward_seconds(backend, spec, problem))
            evals.append(timed(evaluations, spec.on_cuda)[1] / nfe)
    return median_iqr(solves), statistics.median(evals)


def execute(row: Row, settings: Settings) -> Row:
    repeats = 15 if settings.mode == "quick" else 61
    measured = measure(row, settings, repeats=0)
    if measured.status != "ok" or not measured.nfe_forward:
        return measured
    (wall, iqr), eval_s = paired_timing(row, settings, measured.nfe_forward, repeats)
    per_nfe = wall / measured.nfe_forward
    extra = {**measured.extra, "eval_s": eval_s, "paired_repeats": repeats}
    return dataclasses.replace(measured, wall_forward_s=wall, wall_forward_iqr_s=iqr,
                               n_repeats=repeats, wall_per_nfe_s=per_nfe,
                               overhead_ratio=per_nfe / eval_s, extra=extra)


STUDY = Study(NAME, "solver-loop overhead ratio on MLP fields", grid, execute)

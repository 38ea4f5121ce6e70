"""Study ``lorenz_drift``: the gradient error of every method, and backsolve's reconstruction
error of y0, for T from 0.5 to 5 on Lorenz (sigma=10, rho=28, beta=8/3, y0=(1,1,1); float64,
dopri5, rtol=atol=1e-8).

Backsolve re-integrates the state backwards, along which the contracting Lyapunov direction
(lambda_3 ~ -14.57, Sprott) becomes expanding: its error grows like exp(14.6 T), not exp(0.9 T).
odebench's backsolve runs both ways: ``backsolve`` from the end state alone and
``backsolve+reanchor`` reset to the forward solution at each output time (torchdiffeq's way).
With ``n_points=2`` no output time lies inside (0, T), so the two must agree on the gradient:
the pair checks that the comparison with torchdiffeq is like for like. Each run is bounded by a
step budget, so the study always finishes; stopped runs are rows with their status.
"""

from __future__ import annotations

from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point

NAME = "lorenz_drift"
GRADIENTS = {"odebench": ("backprop", "backsolve", "backsolve+reanchor", "interpolated",
                         "checkpointed"),
             "torchdiffeq": ("backprop", "backsolve")}
QUICK_T = (0.5, 1.0, 2.0, 3.0)
FULL_T = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
RTOL = 1e-8
MAX_STEPS = 20_000
RUN_BUDGET_S = 120.0  # wall-clock bound of one run (status "timeout" beyond it)


def grid(settings: Settings) -> list[Row]:
    times = QUICK_T if settings.mode == "quick" else FULL_T
    return [point(NAME, settings, "lorenz", backend, "dopri5", gradient, rtol=RTOL, atol=RTOL,
                  problem_kwargs={"T": T, "n_points": 2})
            for T in times for backend in available_backends(tuple(GRADIENTS))
            for gradient in GRADIENTS[backend]]


def execute(row: Row, settings: Settings) -> Row:
    return measure(row, settings, options={"max_num_steps": MAX_STEPS}, repeats=3,
                   wall_budget_s=30.0, run_budget_s=RUN_BUDGET_S)


STUDY = Study(NAME, "gradient error and backsolve drift vs T on Lorenz", grid, execute)

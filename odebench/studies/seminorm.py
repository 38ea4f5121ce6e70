"""Study ``seminorm``: the backward NFE and wall clock of the continuous adjoints with and without
the seminorm, per backward error norm, at several tolerances, beside torchdiffeq's
``adjoint_options={"norm": "seminorm"}`` (Kidger, Chen & Lyons, "Hey, that's not an ODE",
ICML 2021, arXiv:2009.09457: a median 40%, up to 62%, fewer backward evaluations).

Cases (both with parameters far more numerous than states, where the seminorm should matter):

* ``cnf_<density>``: FFJORD-style CNFs on the 2-D toy densities (eight_gaussians, pinwheel,
  checkerboard; :mod:`odebench.problems.flows`), one gradient of the training loss (the batch's
  negative mean log-likelihood) at the weights after ``train_steps`` Adam steps from a seeded
  random field;
* ``mlp``: the registry's random tanh MLP field of width 256 on a 2-D (and, in the full grid,
  8-D) state, about 70,000 parameters.

Every case runs dopri5 over the grid's ``rtols`` at ``atol = ratio x rtol`` for each of
``ATOL_RATIOS`` (1: FFJORD's rtol = atol; 1e-2: odebench's and torchdiffeq's default pair, rtol
1e-7 with atol 1e-9, under which the parameter adjoints, starting from zero, are measured
against atol alone), each point being one measured gradient
(:func:`odebench.backends.base.measure`: NFE forward and backward counted on the field, the
median forward and backward wall of ``repeats`` bare runs, ``grad_error`` the relative L2
error of (dL/dy0, dL/dp) against the float64 SciPy reference). The configurations:

* odebench ``backsolve``: ``adjoint_norm`` "mixed" (one RMS norm over [y, a, dL/dp]) or
  "per_part" (the max of the parts' RMS norms), each without and with ``seminorm``;
* odebench ``interpolated``: "mixed" and "per_part" without the seminorm, and the seminorm
  (which measures dL/dy alone, so one row, under "mixed");
* torchdiffeq ``odeint_adjoint`` (its default norm, the max of the per-tensor RMS norms, said
  "per_part") and with ``adjoint_options={"norm": "seminorm"}`` (``backsolve_seminorm``).

Rows carry ``seminorm`` (a key column), ``params["adjoint_norm"]``, ``params["n_params"]``,
``params["atol_ratio"]``,
``state_dim`` (the state's numel) and ``width``/``batch``; the report compares the curves at
equal gradient error (:mod:`odebench.report.seminorm`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from odebench import backends, problems
from odebench.backends import RunSpec
from odebench.errors import InvalidInputError
from odebench.problems.base import Problem
from odebench.problems.flows import DIM, HIDDEN, density_flow
from odebench.problems.flows import n_params as flow_params
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import WallBudgetExceeded, available_backends, point, wall_limit
from odebench.studies.gradient_scaling import mlp_params

NAME = "seminorm"
METHOD = "dopri5"
#: (backend, gradient, adjoint_norm, seminorm) of every configuration, per tolerance and case.
CONFIGS: tuple[tuple[str, str, str, bool], ...] = (
    ("odebench", "backsolve", "mixed", False),
    ("odebench", "backsolve", "mixed", True),
    ("odebench", "backsolve", "per_part", False),
    ("odebench", "backsolve", "per_part", True),
    ("odebench", "interpolated", "mixed", False),
    ("odebench", "interpolated", "per_part", False),
    ("odebench", "interpolated", "mixed", True),
    ("torchdiffeq", "backsolve", "per_part", False),
    ("torchdiffeq", "backsolve_seminorm", "per_part", True),
)
MLP_WIDTH = 256
#: atol / rtol of the curves (see the module docstring).
ATOL_RATIOS = (1.0, 1e-2)
QUICK = {
    "cases": (("cnf_eight_gaussians", {"density": "eight_gaussians", "batch": 32, "T": 1.0,
                                       "train_steps": 30}),
              ("mlp", {"dim": 2, "width": MLP_WIDTH, "depth": 2, "batch": 4, "T": 10.0,
                       "n_points": 2})),
    "rtols": (1e-4, 1e-6),
    "repeats": 1,
}
FULL = {
    "cases": tuple((f"cnf_{d}", {"density": d, "batch": 128, "T": 1.0, "train_steps": 150})
                   for d in ("eight_gaussians", "pinwheel", "checkerboard"))
    + tuple(("mlp", {"dim": dim, "width": MLP_WIDTH, "depth": 2, "batch": 8, "T": 10.0,
                     "n_points": 2}) for dim in (2, 8)),
    "rtols": (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8),
    "repeats": 3,
}
OPTIONS = {"max_num_steps": 50_000}
WALL_BUDGET_S = 30.0
RUN_BUDGET_S = 600.0


@functools.lru_cache(maxsize=8)
def _built(name: str, kwargs_json: str) -> Problem:
    """The float64 problem of a case, built once per process (a CNF trains its field)."""
    kwargs = json.loads(kwargs_json)
    if name.startswith("cnf_"):
        return density_flow(**kwargs)
    return problems.get(name, **kwargs)


def case_problem(name: str, kwargs: dict[str, Any]) -> Problem:
    """The problem of the case ``name`` with ``kwargs`` (see the module docstring)."""
    return _built(name, json.dumps(kwargs, sort_keys=True))


def grid(settings: Settings) -> list[Row]:
    spec = QUICK if settings.mode == "quick" else FULL
    rows = []
    ran = set(available_backends(("odebench", "torchdiffeq")))
    for name, kwargs in spec["cases"]:
        cnf = name.startswith("cnf_")
        batch = kwargs["batch"]
        state = batch * (DIM + 1 if cnf else kwargs["dim"])
        width = HIDDEN[0] if cnf else kwargs["width"]
        m = flow_params(DIM, HIDDEN) if cnf else mlp_params(width, kwargs["dim"], kwargs["depth"])
        for ratio in ATOL_RATIOS:
            for rtol in spec["rtols"]:
                for backend, gradient, norm, semi in CONFIGS:
                    if backend not in ran:
                        continue
                    rows.append(point(NAME, settings, name, backend, METHOD, gradient,
                                      rtol=rtol, atol=ratio * rtol, problem_kwargs=kwargs,
                                      width=width, batch=batch, state_dim=state, seminorm=semi,
                                      params={"adjoint_norm": norm, "n_params": m,
                                              "atol_ratio": ratio}))
    return rows


def backend_options(row: Row) -> dict[str, Any]:
    """The options the row's backend gets: odebench's the norm, torchdiffeq's only the budget
    (its gradient name says the seminorm)."""
    if row.backend != "odebench":
        return dict(OPTIONS)
    return {**OPTIONS, "adjoint_norm": row.params["adjoint_norm"], "seminorm": bool(row.seminorm)}


def execute(row: Row, settings: Settings) -> Row:
    spec_of = QUICK if settings.mode == "quick" else FULL
    kwargs = row.params["problem_kwargs"]
    with wall_limit(RUN_BUDGET_S):  # a timeout outside the measurement is the runner's status
        problem = case_problem(row.problem, kwargs)
        spec = RunSpec(problem=problem, method=row.method, rtol=row.rtol, atol=row.atol,
                       gradient=row.gradient, options=backend_options(row), dtype=settings.dtype,
                       device=settings.device, repeats=spec_of["repeats"],
                       threads=settings.threads, wall_budget_s=WALL_BUDGET_S,
                       problem_kwargs=kwargs)
        result = backends.get(row.backend).solve(spec)
    columns = result.columns()
    if problem.p.numel() != row.params["n_params"]:
        raise InvalidInputError(f"{row.problem} has {problem.p.numel()} parameters, but its row "
                                f"says n_params={row.params['n_params']}")
    if WallBudgetExceeded.__name__ in (columns.get("message") or ""):
        columns["status"] = "timeout"
    return dataclasses.replace(row, **columns)


STUDY = Study(NAME, "backward NFE and wall with and without the seminorm, at equal gradient error",
              grid, execute)

__all__ = ["ATOL_RATIOS", "CONFIGS", "FULL", "QUICK", "STUDY", "backend_options", "case_problem", "grid"]

"""Study ``gradient_scaling``: which gradient method wins at which size? Wall clock (forward +
backward) and memory (bytes saved for backward: autograd's saved tensors plus what the method
keeps itself; no peak-RSS subprocess, which would double the grid's cost) of every odebench
gradient method and of torchdiffeq's and torchode's, at one tolerance
(rtol = atol = 1e-5, dopri5; the reversible gradient on its own solver, reversible Heun), along
two axes:

* ``axis="params"``: tanh MLP fields (state 2, batch 1, depth 2) of growing width, 18 to about
  1e6 parameters;
* ``axis="state"``: the 2-D Brusselator on an N x N grid (state 2 N^2, 3 parameters; as in
  SciMLBenchmarks' BrussScaling, Ma et al., HPEC 2021, arXiv 1812.01892; T = 0.01, up to
  50 x 50) and batched MLP states (width 16: 354 parameters), state 2 to 1e4.

Timing only: no float64 reference is computed (it would dominate the cost at these sizes), so
rows carry no error columns. Forward sensitivities are run only where their ``n (n + m)``
sensitivities and ``(n + m) m`` tangent basis fit (``FORWARD_LIMIT`` numbers each); cells
without a row were not run. Every row carries ``params["axis"]``, ``params["n_params"]`` and
``state_dim`` (the total state size): :func:`winners` picks, per (axis, problem, n_params,
state_dim) cell, the run with the least forward + backward wall among the ``ok`` rows - the
figure "winning method per (parameters, state size) cell" plots that, and the crossover is the
first size at which forward mode stops winning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from odebench import backends
from odebench.backends.base import (
    Measurement,
    _bare_run,
    describe,
    time_repeats,
)
from odebench.gradients import method_for
from odebench.measure import CountingField, SavedTensorMeter, pinned_threads, timed
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import (
    WallBudgetExceeded,
    available_backends,
    point,
    run_spec,
    wall_limit,
)

NAME = "gradient_scaling"
GRADIENTS = {
    "odebench": ("backprop", "backsolve", "interpolated", "checkpointed", "forward", "reversible"),
    "torchdiffeq": ("backprop", "backsolve"),
    "torchode": ("backprop", "backsolve"),
}
RTOL = ATOL = 1e-5
FORWARD_LIMIT = 2_000_000
MLP = {"dim": 2, "depth": 2}
QUICK = {"widths": (2, 48), "grids": (2, 5), "batches": (1, 32), "repeats": 1}
# Brusselator to 50 x 50 (state 5,000): at 71 x 71 (10,082) one backprop run took 33 s and
# 5.3 GB resident (1,179 steps, stability-limited), too much for a grid of 9 methods x 4 runs.
FULL = {"widths": (2, 8, 32, 128, 512, 1000), "grids": (2, 4, 8, 16, 32, 50),
        "batches": (1, 8, 64, 512, 5000), "repeats": 3}
BRUSSELATOR_T = 0.01
OPTIONS = {"max_num_steps": 20_000}
RUN_BUDGET_S = 120.0


def mlp_params(width: int, dim: int = MLP["dim"], depth: int = MLP["depth"]) -> int:
    """Weights and biases of the registry's MLP ``dim -> width x depth -> dim``."""
    sizes = [dim] + [width] * depth + [dim]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def configs(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], int, int]]:
    """(axis, problem, registry kwargs, parameters, state size) of every grid configuration."""
    out = [("params", "mlp", {**MLP, "width": w, "batch": 1}, mlp_params(w), MLP["dim"])
           for w in spec["widths"]]
    out += [("state", "brusselator_2d", {"N": n, "T": BRUSSELATOR_T}, 3, 2 * n * n)
            for n in spec["grids"]]
    out += [("state", "mlp", {**MLP, "width": 16, "batch": b}, mlp_params(16), MLP["dim"] * b)
            for b in spec["batches"]]
    return out


def forward_fits(n: int, m: int) -> bool:
    """Whether forward sensitivities fit: ``n (n + m)`` and ``(n + m) m`` numbers."""
    return n * (n + m) <= FORWARD_LIMIT and (n + m) * m <= FORWARD_LIMIT


def grid(settings: Settings) -> list[Row]:
    spec = QUICK if settings.mode == "quick" else FULL
    rows = []
    for axis, problem, kwargs, m, n in configs(spec):
        for backend in available_backends(tuple(GRADIENTS)):
            for gradient in GRADIENTS[backend]:
                if gradient == "forward" and not forward_fits(n, m):
                    continue
                method = method_for(gradient, "dopri5") if backend == "odebench" else "dopri5"
                rows.append(point(NAME, settings, problem, backend, method, gradient,
                                  rtol=RTOL, atol=ATOL, problem_kwargs=kwargs,
                                  width=kwargs.get("width"), batch=kwargs.get("batch"),
                                  state_dim=n, params={"axis": axis, "n_params": m}))
    return rows


def execute(row: Row, settings: Settings) -> Row:
    spec = QUICK if settings.mode == "quick" else FULL
    with wall_limit(RUN_BUDGET_S):
        out = cost(row, settings, spec["repeats"])
    return dataclasses.replace(row, **out.columns())


def cost(row: Row, settings: Settings, repeats: int) -> Measurement:
    """Wall clock, NFE and saved bytes of one gradient run, without a reference: one counted,
    metered run (forward in a saved-tensor meter, then ``loss.backward()``), then ``repeats``
    bare timed runs (medians). A failure is a status, never an exception."""
    spec = run_spec(row, settings, options=dict(OPTIONS), repeats=repeats, wall_budget_s=30.0)
    backend = backends.get(row.backend)
    out = Measurement()
    reason = backend.unsupported(spec)
    if reason is not None:
        return out.fail("error", f"unsupported: {reason}")
    out.extra.update(backend.notes(spec))
    problem = spec.problem.to(dtype=spec.torch_dtype, device=spec.device)
    counted = CountingField(problem.func())
    with pinned_threads(spec.threads):
        try:
            y0 = problem.y0.detach().clone().requires_grad_(True)
            with SavedTensorMeter() as meter:
                fwd, wall_fwd = timed(lambda: backend.forward(spec, counted, y0,
                                                              problem.t_eval, True),
                                      spec.on_cuda)
            out.steps, out.rejected = fwd.steps, fwd.rejected
            out.saved_bytes = meter.bytes + fwd.saved_bytes
            out.extra.update(fwd.extra, autograd_saved_bytes=meter.bytes)
            with counted.phase("backward"):
                _, wall_bwd = timed(problem.loss(fwd.ys).backward, spec.on_cuda)
            if fwd.after_backward is not None:
                fwd.after_backward(out)
            time_repeats(lambda: _bare_run(backend, spec, problem), spec, (wall_fwd, wall_bwd),
                         out)
        except Exception as exc:  # every failure of a run becomes a status row
            out.fail("timeout" if isinstance(exc, WallBudgetExceeded) else backend.status_of(exc),
                     describe(exc))
        finally:
            out.nfe_forward, out.nfe_backward = counted.nfe_forward, counted.nfe_backward
    return out


def cell_of(row: Row) -> tuple[str, str, int, int]:
    """(axis, problem, parameters, state size) of a row."""
    params = row.params or {}
    return (params.get("axis", ""), row.problem, int(params.get("n_params", 0)),
            int(row.state_dim or 0))


def winners(rows: Iterable[Row]) -> dict[tuple[str, str, int, int], Row]:
    """Per cell (see :func:`cell_of`), the ``ok`` row with the least forward + backward wall."""
    best: dict[tuple[str, str, int, int], Row] = {}
    for row in rows:
        if row.status != "ok" or row.wall_forward_s is None or row.wall_backward_s is None:
            continue
        cell = cell_of(row)
        if cell not in best or total_wall(row) < total_wall(best[cell]):
            best[cell] = row
    return best


def total_wall(row: Row) -> float:
    """Forward + backward median wall clock of a row, seconds."""
    return float(row.wall_forward_s or 0.0) + float(row.wall_backward_s or 0.0)


STUDY = Study(NAME, "wall and memory of every gradient method vs parameters and state size",
              grid, execute)

__all__ = ["STUDY", "cell_of", "configs", "forward_fits", "grid", "mlp_params", "total_wall",
           "winners"]

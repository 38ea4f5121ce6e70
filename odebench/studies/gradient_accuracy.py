"""Study ``gradient_accuracy``: every gradient method of odebench and of the peers x problem x
tolerance — gradient error against the float64 reference, NFE forward and backward, wall clock
and memory.

odebench's backsolve runs twice: ``backsolve`` re-integrates the state backwards from the end
alone, ``backsolve+reanchor`` resets it to the stored forward solution at each output time, as
torchdiffeq's and torchode's adjoints do (rows say which in the ``reanchor`` column).
"""

from __future__ import annotations

from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point

NAME = "gradient_accuracy"
GRADIENTS = {
    "odebench": ("backprop", "backsolve", "backsolve+reanchor", "backsolve_seminorm",
                 "interpolated", "checkpointed"),
    "torchdiffeq": ("backprop", "backsolve", "backsolve_seminorm"),
    "torchode": ("backprop",),
}
SMALL_MLP = {"width": 16, "dim": 4, "batch": 4}
QUICK = {"problems": (("lotka_volterra", {}), ("lorenz", {"T": 1.0}), ("mlp", SMALL_MLP)),
         "rtols": (1e-6, 1e-8)}
FULL = {"problems": (("decay", {}), ("harmonic", {}), ("lotka_volterra", {}), ("vdp", {}),
                     ("kepler", {}), ("mlp", {}), ("lorenz", {"T": 1.0}), ("lorenz", {"T": 2.0})),
        "rtols": (1e-4, 1e-6, 1e-8, 1e-10)}


def grid(settings: Settings) -> list[Row]:
    spec = QUICK if settings.mode == "quick" else FULL
    rows = []
    for problem, kwargs in spec["problems"]:
        for backend in available_backends(tuple(GRADIENTS)):
            for gradient in GRADIENTS[backend]:
                for rtol in spec["rtols"]:
                    rows.append(point(NAME, settings, problem, backend, "dopri5", gradient,
                                      rtol=rtol, atol=rtol, problem_kwargs=kwargs,
                                      seminorm=gradient.endswith("seminorm") or None))
    return rows


def execute(row: Row, settings: Settings) -> Row:
    return measure(row, settings, options={"max_num_steps": 50_000}, repeats=3,
                   wall_budget_s=20.0)


STUDY = Study(NAME, __doc__.strip().splitlines()[0], grid, execute)

"""Study ``work_precision``: solution error vs NFE and wall clock, every backend x method x
tolerance, on the non-stiff problems (the stiff ones are the ``stiff`` study's).

Error norms differ across libraries, so equal tolerances are not equal work: compare the curves
(error vs cost), not single points. Each row carries what an interpolation at equal achieved
error needs: ``sol_error``, ``nfe_forward`` and the median wall with its IQR over
``n_repeats``. The full grid's tolerances reach far enough on both sides that every backend's
curve brackets errors 1e-4..1e-8 on most problems: at rtol 1e-10 torchdiffeq's dopri8 and
bosh3 still err by 1e-7..4e-7 on Kepler and Lotka-Volterra (they interpolate the final time
from a lower-order fit), the MLP field's errors sit ~1e3 below rtol; so the higher-order
methods go down to 1e-12 (bosh3, order 3, would need ~5x the evaluations of 1e-10 there) and
every method up to 1e-2.
"""

from __future__ import annotations

from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point

NAME = "work_precision"
METHODS = {"odebench": ("bosh3", "dopri5", "tsit5", "dop853"), "scipy": ("RK45", "DOP853"),
           "torchdiffeq": ("bosh3", "dopri5", "dop853"), "torchode": ("dopri5", "tsit5")}
QUICK = {"problems": ("lotka_volterra", "lorenz"), "rtols": (1e-4, 1e-6, 1e-8)}
FULL = {"problems": ("decay", "harmonic", "lotka_volterra", "vdp", "kepler", "lorenz", "mlp"),
        "rtols": (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)}
#: Full grid only: the tighter tolerances, for the methods of order >= 5.
FULL_TIGHT = {"rtols": (1e-11, 1e-12), "methods": ("dopri5", "tsit5", "dop853", "RK45", "DOP853")}


def grid(settings: Settings) -> list[Row]:
    spec = QUICK if settings.mode == "quick" else FULL
    backends = available_backends(tuple(METHODS))
    if settings.dtype != "float64" or settings.device != "cpu":
        backends = [b for b in backends if b != "scipy"]
    def rtols(method: str) -> tuple[float, ...]:
        tight = spec is FULL and method in FULL_TIGHT["methods"]
        return spec["rtols"] + (FULL_TIGHT["rtols"] if tight else ())

    return [point(NAME, settings, problem, backend, method, rtol=rtol, atol=rtol)
            for problem in spec["problems"] for backend in backends
            for method in METHODS[backend] for rtol in rtols(method)]


def execute(row: Row, settings: Settings) -> Row:
    return measure(row, settings, options={"max_num_steps": 200_000}, repeats=3,
                   wall_budget_s=30.0)


STUDY = Study(NAME, __doc__.strip().splitlines()[0], grid, execute)

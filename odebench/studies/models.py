"""Study ``models``: trains each model of :mod:`odebench.models` with each gradient method —
loss curves, NFE forward/backward per iteration, wall clock, memory and test metrics — with the
non-ODE baselines (ResNet, GRU) beside them. Seeded and reproducible on the CPU.

Rows say what trained: ``dtype`` is the parameters' dtype (the models train in float32 whatever
``--dtype`` says; a record that disagrees with its row is refused), ``rtol``/``atol`` the ODE
solves' tolerances, and ``extra`` holds the solver settings (``solver``) and the whole training
configuration (``train_config``). ``wall_forward_s`` of an ODE model is the median wall clock
of one training iteration (forward, backward and optimiser step), with its IQR over the
``n_repeats`` iterations; ``extra["train_wall_s"]`` the whole training loop's.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from odebench.errors import InvalidInputError
from odebench.measure.timing import median_iqr
from odebench.models import train
from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import point

NAME = "models"
ODE_GRADIENTS = ("backprop", "backsolve", "interpolated", "checkpointed")
QUICK_GRADIENTS = ("backprop", "checkpointed")
# model name -> (dataset, trainer, keyword arguments, uses an ODE solver)
MODELS: dict[str, tuple[str, Callable[..., train.TrainRecord], dict, bool]] = {
    "cnf": ("eight_gaussians", train.train_cnf, {"density": "eight_gaussians"}, True),
    "cnf_moons": ("two_moons", train.train_cnf, {"density": "two_moons"}, True),
    "cnf_checkerboard": ("checkerboard", train.train_cnf, {"density": "checkerboard"}, True),
    "cnf_pinwheel": ("pinwheel", train.train_cnf, {"density": "pinwheel"}, True),
    "latent_ode": ("spirals", train.train_latent_ode, {}, True),
    "gru": ("spirals", train.train_gru_baseline, {}, False),
    "odenet": ("digits", train.train_odenet, {}, True),
    "resnet": ("digits", train.train_resnet, {}, False),
    "node_toy": ("flip_toy", train.train_augmented_toy, {"augment": 0}, True),
    "anode_toy": ("flip_toy", train.train_augmented_toy, {"augment": 1}, True),
}
QUICK_MODELS = ("cnf", "latent_ode", "gru", "odenet", "resnet", "node_toy", "anode_toy")
# the cheapest headline figures first, so that an interrupted full run has them
FULL_MODELS = ("odenet", "resnet", "node_toy", "anode_toy", "latent_ode", "gru", "cnf",
               "cnf_moons", "cnf_checkerboard", "cnf_pinwheel")
# full: the trainers' full configurations, sized to about an hour on two CPU cores in all:
# every gradient method for every model; the CNF and the latent ODE with 300 iterations (kept in
# the row's params, so the run says what it was), the other CNF densities (test NLL per density)
# with backprop only
FULL_GRADIENTS = {"cnf_moons": ("backprop",), "cnf_checkerboard": ("backprop",),
                  "cnf_pinwheel": ("backprop",)}
FULL_OVERRIDES = {"cnf": {"iters": 300}, "cnf_moons": {"iters": 300},
                  "cnf_checkerboard": {"iters": 300}, "cnf_pinwheel": {"iters": 300},
                  "latent_ode": {"iters": 300}, "gru": {"iters": 300}}
# the classifier comparison (ODE-Net vs ResNet within 1 pp) over three seeds, with backprop
FULL_SEEDS = {"odenet": (0, 1, 2), "resnet": (0, 1, 2)}
# the committed report is the full run's; quick runs (nox -s bench) plot under reports/quick
PLOT_DIRS = {"full": Path("reports/figures/models"), "quick": Path("reports/quick/figures/models")}
#: The dtype every trainer trains in (its data and parameters are float32).
MODEL_DTYPE = "float32"


def grid(settings: Settings) -> list[Row]:
    names = QUICK_MODELS if settings.mode == "quick" else FULL_MODELS
    trained = dataclasses.replace(settings, dtype=MODEL_DTYPE)
    rows = []
    for model in names:
        dataset, trainer, _, uses_ode = MODELS[model]
        tol = train.solver_tolerance(trainer, settings.mode == "quick") if uses_ode else None
        gradients = (FULL_GRADIENTS.get(model, ODE_GRADIENTS) if settings.mode == "full"
                     else QUICK_GRADIENTS)
        overrides = FULL_OVERRIDES.get(model, {}) if settings.mode == "full" else {}
        seeds = FULL_SEEDS.get(model, (0,)) if settings.mode == "full" else (0,)
        for gradient in (gradients if uses_ode else ("backprop",)):
            # the training configuration (quick or full) and the seed define the run: both are
            # in the key (seed 0 is the default and not written)
            for seed in seeds if gradient == "backprop" else (0,):
                rows.append(point(NAME, trained, dataset, "odebench",
                                  "dopri5" if uses_ode else "none", gradient, rtol=tol, atol=tol,
                                  model=model,
                                  params={"config": settings.mode, **overrides,
                                          **({"seed": seed} if seed else {})}))
    return rows


def execute(row: Row, settings: Settings) -> Row:
    _, trainer, kwargs, uses_ode = MODELS[row.model]
    overrides = {k: v for k, v in (row.params or {}).items() if k not in ("config", "seed")}
    seed = (row.params or {}).get("seed", 0)
    start = time.perf_counter()
    record = trainer(gradient=row.gradient, seed=seed, device=settings.device,
                     quick=settings.mode == "quick", plot_dir=PLOT_DIRS[settings.mode],
                     **kwargs, **overrides)
    wall = time.perf_counter() - start
    _check_what_ran(row, record, uses_ode)
    extra = {**record.test_metrics, "n_params": record.n_params, "losses": record.losses,
             "nfe_forward_per_iter": record.nfe_forward,
             "nfe_backward_per_iter": record.nfe_backward, "train_wall_s": record.wall_time_s,
             "figures": record.figures, "final_loss": record.losses[-1] if record.losses else None,
             "train_config": record.config, "solver": record.solver}
    if uses_ode and record.nfe_forward and any(record.nfe_forward):
        extra["nfe_backward_over_forward"] = (sum(record.nfe_backward)
                                              / max(sum(record.nfe_forward), 1))
    wall, iqr = median_iqr(record.iter_wall_s) if uses_ode and record.iter_wall_s else (None, None)
    return dataclasses.replace(
        row,
        nfe_forward=int(statistics.mean(record.nfe_forward)) if record.nfe_forward else None,
        nfe_backward=int(statistics.mean(record.nfe_backward)) if record.nfe_backward else None,
        saved_bytes=record.peak_saved_bytes or None,
        wall_forward_s=wall, wall_forward_iqr_s=iqr,
        n_repeats=len(record.iter_wall_s) if wall is not None else None,
        peer_method=record.solver.get("method"),
        reanchor=False if row.gradient == "backsolve" else None,
        extra={**extra, "study_wall_s": wall})


def _check_what_ran(row: Row, record: train.TrainRecord, uses_ode: bool) -> None:
    """Refuse a record whose dtype or tolerances differ from what its row declares."""
    if record.dtype != row.dtype:
        raise InvalidInputError(f"model {row.model} trained in {record.dtype}, but its row "
                                f"says dtype={row.dtype}")
    solver = record.solver
    ran = (solver.get("rtol"), solver.get("atol")) if uses_ode else (None, None)
    if ran != (row.rtol, row.atol):
        raise InvalidInputError(f"model {row.model} solved with rtol, atol = {ran}, but its row "
                                f"says {(row.rtol, row.atol)}")


STUDY = Study(NAME, "train CNF, latent ODE, ODE-Net and the augmented toy per gradient", grid,
              execute)

"""Study ``models``: trains each model of :mod:`odebench.models` with each gradient method —
loss curves, NFE forward/backward per iteration, wall clock, memory and test metrics — with the
non-ODE baselines (ResNet, GRU) beside them. Seeded and reproducible on the CPU.

Rows say what trained: ``dtype`` is the parameters' dtype (the models train in float32 whatever
``--dtype`` says; a record that disagrees with its row is refused), ``rtol``/``atol`` the ODE
solves' tolerances, and ``extra`` holds the solver settings (``solver``) and the whole training
configuration (``train_config``). ``wall_forward_s`` of an ODE model is the median wall clock
of one training iteration (forward, backward and optimiser step), with its IQR over the
``n_repeats`` iterations; ``extra["train_wall_s"]`` the whole training loop's. Every ODE model
row has its NFE per training iteration (``extra["nfe_forward_per_iter"]``,
``extra["nfe_backward_per_iter"]``, list index = iteration) and their medians over the first
and the last tenth of the iterations (``nfe_forward_first`` ... ``nfe_backward_last``).

Three more kinds of row test the Neural ODE paper's claims (Chen et al., NeurIPS 2018); their
``model`` names what they measure, not a trained model of its own:

* ``odenet_test_tol``: the ODE-Net trained once (quick or full configuration, backprop, seed 0,
  training tolerance in ``params["train_tol"]``), then evaluated on the test set with its solves
  at the row's ``rtol`` = ``atol`` (Sec. 3: a looser tolerance at test time buys speed).
  ``nfe_forward`` is one pass over the test set, ``extra["test_error"]`` its error,
  ``wall_forward_s`` the median wall of that pass (no autograd) with its IQR over
  ``n_repeats``; ``gradient`` is ``None`` (a forward pass only). ``sol_error`` is the relative
  L2 error of the ODE block's output z(T) on the first test images against a float64 solve
  described in ``extra["sol_error_reference"]``.
* ``resnet_memory`` and ``odenet_memory``: the bytes saved for backward (``saved_bytes``) by one
  training step on a batch of ``batch`` images, with the initial weights (seed 0): the ResNet
  with ``params["n_blocks"]`` residual blocks, the ODE-Net per gradient method at the row's
  tolerance, which sets its ``nfe_forward`` (Table 1: O(L) memory for a ResNet of L blocks,
  O(1) for the ODE-Net with the adjoint).
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from odebench.errors import InvalidInputError
from odebench.measure.errors import relative_l2
from odebench.measure.timing import median_iqr
from odebench.models import train
from odebench.models.data import digits
from odebench.models.odenet import ODENet, ResNet, SolverConfig, n_parameters
from odebench.models.tolerance import evaluate_at_tolerance, reference_state
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
# the claim rows: test-time tolerances of the trained ODE-Net (float32 resolves rtol >= 1.2e-5),
# its timed repeats, the ResNet depths and the ODE-Net tolerances of the memory rows, their batch
TEST_TOLERANCES = {"quick": (1e-1, 1e-2, 1e-3, 1e-4), "full": (1e-1, 1e-2, 1e-3, 1e-4, 2e-5)}
TEST_REPEATS = {"quick": 5, "full": 21}
# their solution error: z(T) on the first REFERENCE_IMAGES test images against a float64 solve at
# the tightest test tolerance / REFERENCE_DIVISOR (and a 10x tighter one, the reference's spread)
REFERENCE_IMAGES = 64
REFERENCE_DIVISOR = 100
RESNET_DEPTHS = {"quick": (1, 2, 4, 8), "full": (1, 2, 4, 8, 16)}
MEMORY_TOLERANCES = {"quick": (1e-1, 1e-2, 1e-3, 1e-4), "full": (1e-1, 1e-2, 1e-3, 1e-4, 2e-5)}
MEMORY_BATCH = 16


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
    return rows + _claim_rows(settings, trained)


def _claim_rows(settings: Settings, trained: Settings) -> list[Row]:
    """The rows of the test-tolerance and memory claims (see the module docstring)."""
    mode = settings.mode
    train_tol = train.solver_tolerance(train.train_odenet, mode == "quick")
    config = {"config": mode}
    rows = [point(NAME, trained, "digits", "odebench", "dopri5", None, rtol=tol, atol=tol,
                  model="odenet_test_tol",
                  params={**config, "train_gradient": "backprop", "train_tol": train_tol})
            for tol in TEST_TOLERANCES[mode]]
    rows += [point(NAME, trained, "digits", "odebench", "none", "backprop", model="resnet_memory",
                   batch=MEMORY_BATCH, params={**config, "n_blocks": depth})
             for depth in RESNET_DEPTHS[mode]]
    rows += [point(NAME, trained, "digits", "odebench", "dopri5", gradient, rtol=tol, atol=tol,
                   model="odenet_memory", batch=MEMORY_BATCH, params=config)
             for gradient in ODE_GRADIENTS for tol in MEMORY_TOLERANCES[mode]]
    return rows


def execute(row: Row, settings: Settings) -> Row:
    if row.model in CLAIM_RUNS:
        return CLAIM_RUNS[row.model](row, settings)
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


@functools.lru_cache(maxsize=1)
def _trained_odenet(gradient: str, quick: bool, device: str) -> tuple[ODENet, train.TrainRecord]:
    """The ODE-Net the test-tolerance rows evaluate, trained once per process (seed 0)."""
    return train.fit_odenet(gradient=gradient, quick=quick, device=device)


@functools.lru_cache(maxsize=1)
def _reference(gradient: str, mode: str, device: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The inputs, the float64 reference z(T) and the reference's description (rtol, images,
    spread: its relative L2 distance to a 10x tighter solve) of the test-tolerance rows."""
    model, _ = _trained_odenet(gradient, mode == "quick", device)
    x = digits(0).x_test[:REFERENCE_IMAGES].to(device)
    rtol = min(TEST_TOLERANCES[mode]) / REFERENCE_DIVISOR
    state = reference_state(model, x, rtol)
    spread = relative_l2(state.cpu(), reference_state(model, x, rtol / 10).cpu())
    return x, state, {"dtype": "float64", "rtol": rtol, "atol": rtol,
                      "n_images": REFERENCE_IMAGES, "spread": spread}


def _execute_test_tolerance(row: Row, settings: Settings) -> Row:
    params = row.params or {}
    model, record = _trained_odenet(params["train_gradient"], settings.mode == "quick",
                                    settings.device)
    trained_at = (record.solver["rtol"], record.solver["atol"])
    if record.dtype != row.dtype or trained_at != (params["train_tol"],) * 2:
        raise InvalidInputError(f"the ODE-Net trained in {record.dtype} at rtol, atol = "
                                f"{trained_at}, but its row says dtype={row.dtype} and "
                                f"train_tol={params['train_tol']}")
    data = digits(0)
    dev = next(model.parameters()).device
    x_ref, state, reference = _reference(params["train_gradient"], settings.mode,
                                         settings.device)
    result = evaluate_at_tolerance(model, data.x_test.to(dev), data.y_test.to(dev), row.rtol,
                                   row.atol, TEST_REPEATS[settings.mode], (x_ref, state))
    return dataclasses.replace(
        row, nfe_forward=result.nfe_forward, wall_forward_s=result.wall_s,
        sol_error=result.state_error,
        wall_forward_iqr_s=result.wall_iqr_s, n_repeats=result.n_repeats,
        batch=len(data.y_test), peer_method=row.method,
        extra={"test_error": result.test_error, "n_test": len(data.y_test),
               "n_params": record.n_params, "train_rtol": trained_at[0],
               "train_atol": trained_at[1],
               "train_test_error": record.test_metrics["test_error"],
               "train_config": record.config, "train_solver": record.solver,
               "solver": {**record.solver, "rtol": row.rtol, "atol": row.atol,
                          "gradient": None},
               "sol_error_reference": reference})


def _execute_memory(row: Row, settings: Settings) -> Row:
    cfg = train.DigitsConfig.quick() if settings.mode == "quick" else train.DigitsConfig()
    torch.manual_seed(0)
    if row.model == "resnet_memory":
        model: torch.nn.Module = ResNet(cfg.channels, row.params["n_blocks"])
        solver: dict = {}
    else:
        config = SolverConfig(row.method, row.rtol, row.atol, row.gradient)
        model, solver = ODENet(cfg.channels, solver=config), dataclasses.asdict(config)
    model = model.to(settings.device)
    data = digits(0)
    x, y = (v[:row.batch].to(settings.device) for v in (data.x_train, data.y_train))
    record = train.TrainRecord(row.model, row.gradient, row.method, 0, settings.device,
                               n_parameters(model), solver=solver)
    train.classifier_step(record, model, x, y)
    if record.dtype != row.dtype:
        raise InvalidInputError(f"model {row.model} ran in {record.dtype}, but its row says "
                                f"dtype={row.dtype}")
    return dataclasses.replace(
        row, saved_bytes=record.saved_bytes[0],
        nfe_forward=record.nfe_forward[0] if solver else None,
        nfe_backward=record.nfe_backward[0] if solver else None,
        peer_method=row.method if solver else None,
        reanchor=False if row.gradient == "backsolve" else None,
        extra={"n_params": record.n_params, "channels": cfg.channels, "weights": "init seed 0",
               "solver": solver})


#: The claim rows' model names -> how to measure one.
CLAIM_RUNS: dict[str, Callable[[Row, Settings], Row]] = {
    "odenet_test_tol": _execute_test_tolerance,
    "resnet_memory": _execute_memory,
    "odenet_memory": _execute_memory,
}


STUDY = Study(NAME, "train CNF, latent ODE, ODE-Net and the augmented toy per gradient", grid,
              execute)

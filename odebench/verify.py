"""The gradient-correctness gate: every gradient method against the float64 reference.

``odebench verify`` runs each gradient method on a verification set (float64; dopri5 at
rtol = atol = 1e-9 on the non-stiff cases, rodas5p at rtol 1e-8 and the problem's atol on the
stiff ones), compares the gradient of the problem's loss w.r.t. (y0, p) with the
forward-sensitivity / adjoint reference of :mod:`odebench.reference`, and fails when a result
breaks its budget. Budgets (relative L2 errors) are explicit:

* every method <= 1e-5 on the non-chaotic problems;
* backprop and checkpointed agree with each other to <= 1e-8 (both are the exact gradient of
  the same discrete solution);
* Lorenz (T = 1 and T = 2): backprop / checkpointed <= 1e-6, interpolated <= 1e-4; backsolve
  <= 1e-3 at T = 1, and at T = 2 it is EXPECTED to be wrong (> 1e-2, with a reconstruction error
  of y0 > 1e-3): the gate checks that the drift is still detected. A backsolve run that stops
  with a typed error (step budget, non-finite state) also counts as detected drift.
* the options that change a method's code path, on Lotka-Volterra (budget 1e-5): backsolve
  with ``reanchor`` and checkpointed with ``checkpoint_every=3``.
* stiff (rodas5p; Rosenbrock stages and adjoint solved implicitly): backprop / checkpointed /
  interpolated <= 1e-5 on the stiff linear system (eigenvalues to -1e4), ROBER (T = 40) and
  HIRES (T = 5). backsolve is EXPECTED to fail on all three: re-integrated backwards, the fast
  decaying modes of the state grow (by e^{1e4 t} on the linear system), so it stops with a
  typed error (step budget, non-finite state) or drifts by > 1e-2; the gate checks that.
* forward (forward sensitivities, the forward method and tolerances): the budgets above.
* reversible (reversible Heun, second order, at a fixed step ``REVERSIBLE_STEP`` = 1e-3: its
  first-order error estimate makes adaptive runs at tol 1e-9 take millions of steps): <= 1e-3
  against the reference (measured up to 4e-4, on Kepler), and it agrees with backprop through
  the same solver to <= 1e-8 (both the exact gradient of the same discrete solution). Reversible
  Heun is stable only for h*lambda on the imaginary segment [-i, i] (the parasitic root
  ``z - sqrt(z^2 + 1)`` of the linear test equation grows as e^{|lambda| t} for any real
  lambda < 0), so on van der Pol, Lorenz and the stiff cases it is EXPECTED to blow up or drift
  (> 1e-2, or a typed error): the gate checks that.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import odebench
import odebench.reference
from odebench.errors import OdeBenchError
from odebench.gradients import method_for
from odebench.measure.memory import SavedTensorMeter
from odebench.problems import Problem, get


@dataclass(frozen=True)
class Budget:
    """Allowed range of a gradient's relative L2 error (and of backsolve's reconstruction error).

    ``min_error`` / ``min_recon`` > 0 mean the method is expected to be wrong by at least that
    much: the gate then checks that the error is still detected.
    """

    max_error: float = math.inf
    min_error: float = 0.0
    min_recon: float = 0.0
    stop_ok: bool = False

    def describe(self) -> str:
        if self.min_error > 0:
            return f"> {self.min_error:g} (drift expected)"
        return f"<= {self.max_error:g}"


@dataclass(frozen=True)
class Case:
    """One verification problem: a registry name, its settings and its budgets per method;
    ``options`` are passed to the solve (e.g. ``reanchor``, ``checkpoint_every``), and
    ``gradients`` restricts the case to the methods those options concern."""

    label: str
    name: str
    kwargs: dict = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)
    default: Budget = Budget(max_error=1e-5)
    method: str = "dopri5"
    rtol: float | None = None
    max_steps_backward: int | None = None
    options: dict = field(default_factory=dict)
    gradients: tuple[str, ...] | None = None

    def budget(self, gradient: str) -> Budget:
        return self.budgets.get(gradient, GRADIENT_BUDGETS.get(gradient, self.default))

    def applies(self, gradient: str) -> bool:
        """Whether the case checks ``gradient`` (``gradients``: the methods its options
        concern; None: all)."""
        return self.gradients is None or gradient in self.gradients

    def problem(self) -> Problem:
        return get(self.name, **self.kwargs)


DRIFT_EXPECTED = Budget(min_error=1e-2, stop_ok=True)
LORENZ_T1 = {"backprop": Budget(1e-6), "checkpointed": Budget(1e-6),
             "interpolated": Budget(1e-4), "backsolve": Budget(1e-3),
             "reversible": DRIFT_EXPECTED}
LORENZ_T2 = {"backprop": Budget(1e-6), "checkpointed": Budget(1e-6),
             "interpolated": Budget(1e-4),
             "backsolve": Budget(min_error=1e-2, min_recon=1e-3, stop_ok=True),
             "reversible": DRIFT_EXPECTED}
REVERSIBLE_STEP = 1e-3
# The options and default budgets of gradient methods that run differently from the others.
GRADIENT_OPTIONS: dict[str, dict] = {"reversible": {"step_size": REVERSIBLE_STEP}}
GRADIENT_BUDGETS: dict[str, Budget] = {"reversible": Budget(1e-3)}

# The options users set that change a gradient method's code path.
OPTION_CASES: tuple[Case, ...] = (
    Case("lotka_volterra reanchor", "lotka_volterra", options={"reanchor": True},
         gradients=("backsolve",)),
    Case("lotka_volterra ckpt/3", "lotka_volterra", options={"checkpoint_every": 3},
         gradients=("checkpointed",)),
)
FULL_CASES: tuple[Case, ...] = (
    Case("decay", "decay"),
    Case("harmonic", "harmonic"),
    Case("lotka_volterra", "lotka_volterra"),
    Case("vdp", "vdp", budgets={"reversible": DRIFT_EXPECTED}),
    Case("mlp", "mlp"),
    Case("kepler", "kepler"),
    Case("lorenz T=1", "lorenz", {"T": 1.0}, LORENZ_T1),
    Case("lorenz T=2", "lorenz", {"T": 2.0}, LORENZ_T2),
    *OPTION_CASES,
)
STIFF = {"method": "rodas5p", "rtol": 1e-8, "max_steps_backward": 5_000}
STIFF_DRIFT = {"backsolve": DRIFT_EXPECTED, "reversible": DRIFT_EXPECTED}
STIFF_CASES: tuple[Case, ...] = (
    Case("stiff_linear", "stiff_linear", {"n": 4, "stiffness": 1e4, "n_points": 3},
         STIFF_DRIFT, **STIFF),
    Case("rober T=40", "rober", {"T": 40.0}, STIFF_DRIFT, **STIFF),
    Case("hires T=5", "hires", {"T": 5.0}, STIFF_DRIFT, **STIFF),
)
QUICK_CASES: tuple[Case, ...] = (
    Case("decay", "decay"),
    Case("lotka_volterra", "lotka_volterra"),
    Case("mlp (small)", "mlp", {"width": 16, "dim": 4, "batch": 4}),
    Case("lorenz T=1", "lorenz", {"T": 1.0}, LORENZ_T1),
    Case("lorenz T=2", "lorenz", {"T": 2.0}, LORENZ_T2),
    STIFF_CASES[1],
    *OPTION_CASES,
)
AGREEMENT_BUDGET = 1e-8
RTOL = ATOL = 1e-9


@dataclass
class Result:
    """One (problem, gradient) verification run."""

    problem: str
    gradient: str
    grad_error: float
    budget: str
    ok: bool
    nfe_forward: int = 0
    nfe_backward: int = 0
    saved_bytes: int = 0
    recon_error: float | None = None
    method: str = "dopri5"
    status: str = "ok"
    message: str = ""
    wall_s: float = 0.0


@dataclass
class Report:
    """All results plus the backprop-vs-checkpointed agreement checks."""

    results: list[Result]
    agreements: list[Result]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results + self.agreements)

    @property
    def breaches(self) -> list[Result]:
        return [r for r in self.results + self.agreements if not r.ok]

    def to_json(self) -> dict:
        return {"ok": self.ok, "rtol": RTOL, "atol": ATOL, "stiff": STIFF,
                "gradient_options": GRADIENT_OPTIONS,
                "results": [asdict(r) for r in self.results],
                "agreements": [asdict(r) for r in self.agreements]}


def relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    """||x - ref|| / ||ref|| (L2); inf when x holds non-finite values."""
    if not np.all(np.isfinite(x)):
        return math.inf
    denom = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(x - ref))
    return diff / denom if denom > 0 else diff


def model_gradient(problem: Problem, gradient: str, method: str = "dopri5",
                   rtol: float = RTOL, atol: float = ATOL,
                   options: dict | None = None) -> tuple[np.ndarray, odebench.Stats, int]:
    """Gradient of ``problem.loss`` w.r.t. (y0, p) by ``gradient``, flattened and concatenated;
    plus the solve's stats and the bytes autograd saved for backward."""
    func = problem.func()
    y0 = problem.y0.clone().requires_grad_(True)
    with SavedTensorMeter() as meter:
        sol = odebench.solve(func, y0, problem.t_eval, method=method, rtol=rtol, atol=atol,
                             gradient=gradient, options=options)
    loss = problem.loss(sol.ys)
    loss.backward()
    parts = []
    for tensor in (y0, *func.parameters()):
        g = tensor.grad
        parts.append(np.full(tensor.numel(), np.nan) if g is None
                     else g.detach().cpu().double().reshape(-1).numpy())
    return np.concatenate(parts), sol.stats, meter.bytes + sol.stats.saved_bytes


def reference_vector(problem: Problem) -> np.ndarray:
    """The float64 reference gradient of ``problem.loss``, flattened as :func:`model_gradient`."""
    ref = odebench.reference.gradient(problem)
    return np.concatenate([np.asarray(ref.dy0).reshape(-1), np.asarray(ref.dp).reshape(-1)])


def check(case: Case, gradient: str, ref: np.ndarray, tol: float = RTOL,
          ) -> tuple[Result, np.ndarray | None]:
    """Run one method on one case (rtol = atol = ``tol``) and judge it against its budget."""
    budget = case.budget(gradient)
    problem = case.problem()
    start = time.perf_counter()
    options = {"max_num_steps": 20_000, **GRADIENT_OPTIONS.get(gradient, {}), **case.options}
    if case.max_steps_backward is not None:
        options["max_num_steps_backward"] = case.max_steps_backward
    rtol = case.rtol if case.rtol is not None else tol
    atol = problem.atol if problem.stiff else tol
    method = method_for(gradient, case.method)
    try:
        grad, stats, saved = model_gradient(problem, gradient, method=method, rtol=rtol,
                                            atol=atol, options=options)
    except OdeBenchError as err:
        ok = budget.stop_ok
        return Result(case.label, gradient, math.inf, budget.describe(), ok, method=method,
                      status="stopped",
                      message=f"{type(err).__name__}: {err}",
                      wall_s=time.perf_counter() - start), None
    error = relative_error(grad, ref)
    ok = error <= budget.max_error and error >= budget.min_error
    if budget.min_recon > 0:
        ok = ok and (stats.recon_error is None or stats.recon_error >= budget.min_recon)
    return Result(case.label, gradient, error, budget.describe(), ok, stats.nfe,
                  stats.nfe_backward, saved, stats.recon_error, method=method,
                  wall_s=time.perf_counter() - start), grad


def agreement(label: str, name: str, grad: np.ndarray, exact: np.ndarray, method: str) -> Result:
    """``grad`` against ``exact`` (the same discrete solution's gradient by backprop) within
    ``AGREEMENT_BUDGET``."""
    diff = relative_error(grad, exact)
    return Result(label, name, diff, f"<= {AGREEMENT_BUDGET:g}", diff <= AGREEMENT_BUDGET,
                  method=method)


def reversible_agreement(case: Case, grad: np.ndarray) -> Result:
    """``reversible`` against backprop through the same reversible Heun solve."""
    method = method_for("reversible", case.method)
    options = {"max_num_steps": 20_000, **GRADIENT_OPTIONS["reversible"]}
    exact, _, _ = model_gradient(case.problem(), "backprop", method=method, options=options)
    return agreement(case.label, f"reversible vs backprop ({method})", grad, exact, method)


def run(cases: tuple[Case, ...] = FULL_CASES, gradients: tuple[str, ...] | None = None,
        progress: Callable[[str], None] | None = None, tol: float = RTOL) -> Report:
    """Verify ``gradients`` (default all) on ``cases`` at rtol = atol = ``tol``."""
    gradients = gradients or odebench.GRADIENTS
    results, agreements = [], []
    for case in cases:
        if not any(case.applies(g) for g in gradients):
            continue
        ref = reference_vector(case.problem())
        grads = {}
        for gradient in (g for g in gradients if case.applies(g)):
            if progress is not None:
                progress(f"{case.label} / {gradient}")
            result, grads[gradient] = check(case, gradient, ref, tol)
            results.append(result)
        if grads.get("backprop") is not None and grads.get("checkpointed") is not None:
            agreements.append(agreement(case.label, "checkpointed vs backprop",
                                        grads["checkpointed"], grads["backprop"], case.method))
        if grads.get("reversible") is not None and case.budget("reversible").min_error == 0:
            agreements.append(reversible_agreement(case, grads["reversible"]))
    return Report(results, agreements)


def format_table(report: Report) -> str:
    """The verification table as plain text."""
    header = (f"{'problem':<24} {'method':<15} {'gradient':<26} {'rel. L2 error':>13} {'budget':<24} "
              f"{'NFE fwd':>8} {'NFE bwd':>8} {'saved MiB':>9} {'recon':>9}  verdict")
    lines = [header, "-" * len(header)]
    for r in report.results + report.agreements:
        recon = "" if r.recon_error is None else f"{r.recon_error:.2e}"
        verdict = "ok" if r.ok else "BREACH"
        if r.status != "ok":
            verdict += f" ({r.message[:60]})"
        lines.append(f"{r.problem:<24} {r.method:<15} {r.gradient:<26} {r.grad_error:>13.3e} {r.budget:<24} "
                     f"{r.nfe_forward:>8} {r.nfe_backward:>8} {r.saved_bytes / 2**20:>9.3f} "
                     f"{recon:>9}  {verdict}")
    lines.append(f"{len(report.breaches)} breach(es); gate {'PASSED' if report.ok else 'FAILED'}"
                 f" (float64; dopri5 at rtol=atol={RTOL:g} unless the method column says "
                 f"otherwise: stiff cases {STIFF['method']} at rtol {STIFF['rtol']:g}; "
                 f"reversible_heun at step_size {REVERSIBLE_STEP:g})")
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    """Write the report for machines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2, default=float))

"""The SciPy backend: ``scipy.integrate`` solvers in float64, forward only.

The solver object is stepped by hand (as ``solve_ivp`` does inside), so that the accepted
steps are counted, ``max_num_steps`` can stop it, and each output time is the step end point
or the solver's dense output there (what ``solve_ivp(t_eval=...)`` returns). The right-hand
side is the problem's torch ``rhs`` on numpy arrays (``reference.bridge.TorchSystem``), the
Jacobian of the implicit methods ``torch.func.jacrev`` of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy
from scipy.integrate import BDF, DOP853, LSODA, RK23, RK45, OdeSolver, Radau

from odebench.backends.base import (
    ERROR_NORM,
    Measurement,
    RunSpec,
    Truth,
    describe,
    describe_run,
    fill_solution_errors,
    measure_rss,
    status_of,
    time_repeats,
)
from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)
from odebench.measure import pinned_threads, timed
from odebench.reference.bridge import TorchSystem

SOLVERS: dict[str, type[OdeSolver]] = {
    "RK23": RK23, "RK45": RK45, "DOP853": DOP853, "LSODA": LSODA, "BDF": BDF, "Radau": Radau,
}
IMPLICIT = ("LSODA", "BDF", "Radau")
SCHEME_NOTES: dict[str, str] = {
    "RK23": "Bogacki-Shampine 3(2), the pair of odebench's bosh3",
    "RK45": "Dormand-Prince 5(4), the pair of dopri5",
    "DOP853": "Hairer's DOP853 8(5,3), as odebench's dop853",
    "LSODA": "switches between Adams and BDF (ODEPACK)",
}
#: Options understood here (``max_num_steps`` caps accepted steps; the others go to SciPy).
OPTIONS = ("max_num_steps", "first_step", "max_step")


@dataclass
class ScipyRun:
    """One integration: ``ys`` ``[T, n]`` (NaN where not reached) and SciPy's counters."""

    ys: np.ndarray
    steps: int = 0
    nfev: int = 0
    njev: int = 0
    nlu: int = 0


def integrate(method: str, system: TorchSystem, ts: np.ndarray, y0: np.ndarray,
              rtol: float | None, atol: float | None, options: dict[str, Any]) -> ScipyRun:
    """Step SciPy's ``method`` from ``y0`` (flat, float64) through the output times ``ts``.

    Raises ``MaxStepsExceededError``, ``StepSizeUnderflowError`` (SciPy's "failed") or
    ``NonFiniteError``, each with the :class:`ScipyRun` so far as ``partial``.
    """
    kwargs = {k: options[k] for k in ("first_step", "max_step") if k in options}
    kwargs.update({k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None})
    if method in IMPLICIT:
        kwargs["jac"] = system.jac
    max_steps = options.get("max_num_steps", np.inf)
    solver = SOLVERS[method](system.f, float(ts[0]), y0, float(ts[-1]), **kwargs)
    run = ScipyRun(ys=np.full((len(ts), y0.size), np.nan))
    run.ys[0] = y0
    direction = np.sign(ts[-1] - ts[0])
    k = 1
    while k < len(ts):
        if run.steps >= max_steps:
            raise MaxStepsExceededError(
                f"{method}: max_num_steps={max_steps} reached at t={solver.t!r}", partial=run)
        message = solver.step()
        _copy_counts(solver, run)
        if solver.status == "failed":
            raise StepSizeUnderflowError(f"{method} failed at t={solver.t!r}: {message}",
                                         partial=run)
        run.steps += 1
        if not np.all(np.isfinite(solver.y)):
            raise NonFiniteError(f"{method}: non-finite state at t={solver.t!r}", partial=run)
        dense = None
        while k < len(ts) and direction * (ts[k] - solver.t) <= 0:
            if ts[k] == solver.t:
                run.ys[k] = solver.y
            else:
                if dense is None:
                    dense = solver.dense_output()
                run.ys[k] = dense(ts[k])
            k += 1
    return run


def _copy_counts(solver: OdeSolver, run: ScipyRun) -> None:
    run.nfev, run.njev, run.nlu = int(solver.nfev), int(solver.njev), int(solver.nlu)


class ScipyBackend:
    """SciPy's RK23, RK45, DOP853, LSODA, BDF and Radau; float64 on the CPU, no gradients."""

    name = "scipy"

    def methods(self) -> list[str]:
        return list(SOLVERS)

    def gradients(self) -> list[str]:
        return []

    def available(self) -> tuple[bool, str]:
        return True, f"scipy {scipy.__version__}"

    def status_of(self, exc: BaseException) -> str:
        return status_of(exc)

    def unsupported(self, spec: RunSpec) -> str | None:
        """Why this backend cannot run ``spec``, or ``None``."""
        if spec.method not in SOLVERS:
            return f"method {spec.method!r} is not one of {list(SOLVERS)}"
        if spec.gradient is not None:
            return "the scipy backend solves forward only (no gradient)"
        if spec.dtype != "float64" or spec.device != "cpu":
            return "the scipy backend runs in float64 on the cpu only"
        unknown = sorted(set(spec.options or {}) - set(OPTIONS))
        if unknown:
            return f"options {unknown} are not understood; scipy takes {list(OPTIONS)}"
        return None

    def notes(self, spec: RunSpec) -> dict[str, Any]:
        """How ``spec`` is run, for ``Measurement.extra``."""
        notes: dict[str, Any] = {"error_norm": ERROR_NORM}
        if spec.method in SCHEME_NOTES:
            notes["scheme_note"] = SCHEME_NOTES[spec.method]
        if spec.method in IMPLICIT:
            notes["jacobian"] = "torch.func.jacrev of the rhs"
        return notes

    def peer_method(self, spec: RunSpec) -> str:
        """SciPy's own class name: odebench's names are not used here."""
        return spec.method

    def reanchors(self, spec: RunSpec) -> bool | None:
        return None

    def _integrate(self, spec: RunSpec) -> ScipyRun:
        problem = spec.problem
        return integrate(spec.method, TorchSystem(problem), problem.t_eval.numpy(),
                         problem.y0.detach().reshape(-1).numpy().copy(), spec.rtol, spec.atol,
                         spec.options or {})

    def run_once(self, spec: RunSpec) -> None:
        """One integration, nothing measured; raises on failure."""
        reason = self.unsupported(spec)
        if reason is not None:
            raise InvalidInputError(f"unsupported: {reason}")
        with pinned_threads(spec.threads):
            self._integrate(spec)

    def solve(self, spec: RunSpec) -> Measurement:
        """Measure one forward solve: errors, SciPy's counters, median wall clock."""
        out = Measurement()
        reason = self.unsupported(spec)
        if reason is not None:
            return out.fail("error", f"unsupported: {reason}")
        describe_run(self, spec, out)
        try:
            truth = Truth.of(spec)
        except Exception as exc:  # a failed reference is reported, not raised
            return out.fail("error", f"reference failed: {describe(exc)}")
        with pinned_threads(spec.threads):
            try:
                run, wall = timed(lambda: self._integrate(spec), sync_cuda=False)
                self._fill_counts(out, run)
                shape = (len(run.ys), *spec.problem.y0.shape)
                fill_solution_errors(out, run.ys.reshape(shape), truth, spec.problem.atol)
                time_repeats(lambda: (timed(lambda: self._integrate(spec), False)[1], None),
                             spec, (wall, None), out)
            except Exception as exc:  # every failure of a solve becomes a status row
                partial = getattr(exc, "partial", None)
                if isinstance(partial, ScipyRun):
                    self._fill_counts(out, partial)
                out.fail(self.status_of(exc), describe(exc))
        if spec.measure_rss:
            measure_rss(self.name, spec, out)
        return out

    @staticmethod
    def _fill_counts(out: Measurement, run: ScipyRun) -> None:
        out.nfe_forward, out.steps = run.nfev, run.steps
        out.n_jac, out.n_lu = run.njev, run.nlu

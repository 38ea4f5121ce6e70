"""asv benchmarks for odebench: thin wrappers over the public API.

Tracked over commits by ``nox -s bench`` (asv run + publish) and gated by
``nox -s bench_compare -- BASE``. Every benchmark builds its problem in ``setup``
(not timed), pins torch to one thread, and runs one solve (and backward) of a
small problem: asv spawns a fresh interpreter per benchmark and parameter
combination (~3.5 s each for ``import torch``), so the grid is kept small.

    Forward.time_forward            wall time of a forward solve (no autograd graph)
    Forward.track_nfe_forward       vector-field evaluations of that solve
    ForwardBackward.time_forward_backward    solve + loss.backward() per gradient method
    ForwardBackward.peakmem_forward_backward peak RSS of the process (asv's peakmem)
    ForwardBackward.track_nfe_backward       evaluations of the backward pass
    GradientAccuracy.track_grad_error        relative L2 error of (dL/dy0, dL/dp) against
                                             odebench.reference.gradient (float64 SciPy)

Larger is worse for every figure here, as asv assumes.
"""

from __future__ import annotations

import numpy as np
import torch

import odebench
from odebench import problems

RTOL = 1e-6
ATOL = 1e-8
FORWARD_PROBLEMS = ["lotka_volterra", "lorenz", "mlp"]
FORWARD_METHODS = ["dopri5", "tsit5", "dop853"]
GRADIENT_METHODS = ["backprop", "backsolve", "interpolated", "checkpointed"]
GRADIENT_PROBLEM = "mlp"
GRADIENT_SOLVER = "dopri5"


def _pin_threads() -> None:
    torch.set_num_threads(1)


def _gradient_run(problem, gradient: str):
    """One solve + backward of the problem's default loss; returns (func, y0, solution)."""
    func = problem.func()
    y0 = problem.y0.detach().clone().requires_grad_(True)
    sol = odebench.solve(
        func,
        y0,
        problem.t_eval,
        method=GRADIENT_SOLVER,
        rtol=RTOL,
        atol=ATOL,
        gradient=gradient,
    )
    problem.loss(sol.ys).backward()
    return func, y0, sol


class Forward:
    """Forward solve, no gradient: the solver loop itself."""

    params = (FORWARD_PROBLEMS, FORWARD_METHODS)
    param_names = ["problem", "method"]
    warmup_time = 0.1
    repeat = (1, 5, 4.0)

    def setup(self, problem: str, method: str) -> None:
        _pin_threads()
        self.problem = problems.get(problem)
        self.func = self.problem.func()
        self.method = method
        self._solve()  # warm-up (and fails setup, not the timing, if the solve raises)

    def _solve(self):
        with torch.no_grad():
            return odebench.solve(
                self.func,
                self.problem.y0,
                self.problem.t_eval,
                method=self.method,
                rtol=RTOL,
                atol=ATOL,
            )

    def time_forward(self, problem: str, method: str) -> None:
        self._solve()

    def track_nfe_forward(self, problem: str, method: str) -> int:
        return int(self._solve().stats.nfe)

    track_nfe_forward.unit = "evaluations"


class ForwardBackward:
    """Solve + ``loss.backward()`` on the MLP vector field, one gradient method each."""

    params = (GRADIENT_METHODS,)
    param_names = ["gradient"]
    warmup_time = 0.1
    repeat = (1, 5, 4.0)

    def setup(self, gradient: str) -> None:
        _pin_threads()
        self.problem = problems.get(GRADIENT_PROBLEM)
        self.gradient = gradient
        # warm-up: the first backward of a process pays one-off costs (lazy imports, autograd
        # setup; ~1.8 s for the adjoints), which --quick's single sample would otherwise time
        _gradient_run(self.problem, gradient)

    def time_forward_backward(self, gradient: str) -> None:
        _gradient_run(self.problem, gradient)

    def peakmem_forward_backward(self, gradient: str) -> None:
        _gradient_run(self.problem, gradient)

    def track_nfe_backward(self, gradient: str) -> int:
        return int(_gradient_run(self.problem, gradient)[2].stats.nfe_backward)

    track_nfe_backward.unit = "evaluations"


class GradientAccuracy:
    """Gradient error against the float64 forward-sensitivity reference."""

    params = (GRADIENT_METHODS,)
    param_names = ["gradient"]
    timeout = 600  # setup_cache computes the SciPy reference once (then cached on disk)

    def setup_cache(self):
        from odebench import reference

        ref = reference.gradient(problems.get(GRADIENT_PROBLEM))
        return np.concatenate([np.ravel(ref.dy0), np.ravel(ref.dp)]).astype(np.float64)

    def setup(self, truth, gradient: str) -> None:
        _pin_threads()
        self.problem = problems.get(GRADIENT_PROBLEM)

    def track_grad_error(self, truth, gradient: str) -> float:
        func, y0, _ = _gradient_run(self.problem, gradient)
        grads = [y0.grad] + [p.grad for p in func.parameters()]
        got = torch.cat([g.detach().reshape(-1) for g in grads]).double().cpu().numpy()
        return float(np.linalg.norm(got - truth) / np.linalg.norm(truth))

    track_grad_error.unit = "relative L2"

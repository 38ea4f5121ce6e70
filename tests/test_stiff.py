"""The implicit (Rosenbrock) solvers: order, stability, Test Set accuracy, dense output, float32,
step statistics, and gradients through them.

Accuracy against published values is reported as scd (significant correct digits),
``-log10`` of the largest per-component relative error with an absolute floor of the problem's
``atol``; ROBER, whose components span 13 decades, is scored on ``log(y)`` (the relative error to
first order, so that y2 ~ 1e-13 counts as much as y3 ~ 1). ``-s`` shows the printed figures.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.integrate
import torch

import odebench
from odebench import problems
from odebench.problems.base import Problem
from odebench.reference.bridge import TorchSystem
from odebench.solution import Stats
from odebench.solvers import FlatField, SolverOptions, integrate, scheme
from odebench.solvers.rosenbrock_tableaus import ROSENBROCK_TABLEAUS, RosenbrockTableau

F64 = torch.float64
NOMINAL = {"rodas5p": 5, "rodas4": 4}
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Timings and step counts of one torch thread, as the benchmarks run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logistic(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y' = cos(t) y (1 - y), y(0) = 1/2: y = 1 / (1 + exp(-sin t)); non-autonomous, so the
    df/dt terms of the method are exercised."""
    return torch.cos(t) * y * (1 - y)


def riccati(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y' = -2 t y^2, y(0) = 1: y = 1 / (1 + t^2)."""
    return -2 * t * y**2


LAMBDA = 1e6


def prothero_robinson(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y' = -lambda (y - cos t), lambda = 1e6: a 1e-6 boundary layer, then y ~ cos t."""
    return -LAMBDA * (y - torch.cos(t))


def prothero_robinson_exact(t: torch.Tensor) -> torch.Tensor:
    """Solution from y(0) = 0: A cos t + B sin t - A exp(-lambda t)."""
    a, b = LAMBDA**2 / (1 + LAMBDA**2), LAMBDA / (1 + LAMBDA**2)
    return a * torch.cos(t) + b * torch.sin(t) - a * torch.exp(-LAMBDA * t)


def scd(problem: Problem, y: np.ndarray) -> float:
    """Significant correct digits at the reference time (see the module docstring)."""
    ref = problem.reference.y.numpy()
    if problem.name == "rober":
        err = np.abs(np.log(y) - np.log(ref))
    else:
        err = np.abs(y - ref) / np.maximum(np.abs(ref), problem.atol)
    return float(-np.log10(err.max()))


def solve_forward(problem: Problem, method: str, rtol: float, atol: float) -> odebench.Solution:
    """Forward solve without a graph (accuracy and cost only)."""
    with torch.no_grad():
        return odebench.solve(problem.func(), problem.y0, problem.t_eval, method=method,
                              rtol=rtol, atol=atol)


def scipy_steps(problem: Problem, method: str, rtol: float, atol: float) -> tuple[int, float]:
    """(accepted steps, scd) of SciPy's ``method`` with the torch Jacobian, float64."""
    system = TorchSystem(problem)
    span = (float(problem.t_eval[0]), float(problem.t_eval[-1]))
    out = scipy.integrate.solve_ivp(system.f, span, problem.y0.numpy(), method=method, rtol=rtol,
                                    atol=atol, jac=system.jac)
    assert out.success, out.message
    return len(out.t) - 1, scd(problem, out.y[:, -1])


# --- the tables ---------------------------------------------------------------------------


def stability(tab: RosenbrockTableau, z: complex) -> complex:
    """R(z) of the step applied to y' = lambda y, z = h lambda."""
    k = np.zeros(tab.stages, dtype=complex)
    for i in range(tab.stages):
        k[i] = (z * (1 + tab.a[i, :i] @ k[:i]) + tab.C[i, :i] @ k[:i]) / (1 / tab.gamma - z)
    return 1 + tab.b @ k


@pytest.mark.parametrize("method", sorted(ROSENBROCK_TABLEAUS))
def test_tableau_is_l_stable_and_of_its_order(method: str):
    """R(-inf) = 0 (L-stability), |R(iy)| <= 1 on the imaginary axis (A-stability), and
    R(z) - exp(z) = O(z^(p+1)) for small z."""
    tab = ROSENBROCK_TABLEAUS[method]
    assert abs(stability(tab, -1e12)) < 1e-9
    assert max(abs(stability(tab, 1j * y)) for y in np.logspace(-3, 5, 400)) <= 1 + 1e-12
    e1, e2 = (abs(stability(tab, z) - np.exp(z)) for z in (0.1, 0.05))
    assert math.log2(e1 / e2) >= tab.order + 1 - 0.2
    assert np.allclose(tab.b, tab.a[-1] + np.eye(tab.stages)[-1])


def test_registered():
    assert set(NOMINAL) <= set(odebench.STIFF_METHODS) <= set(odebench.METHODS)
    sch = scheme("rodas5p", F64, CPU)
    assert sch.implicit and sch.adaptive and sch.has_dense
    assert not scheme("dopri5", F64, CPU).implicit


# --- order, stability, dense output ------------------------------------------------------

STEPS = {"rodas5p": [8, 16, 32, 64], "rodas4": [16, 32, 64, 128]}


@pytest.mark.parametrize("method", sorted(NOMINAL))
def test_convergence_order(method: str):
    """Fixed steps on a smooth non-stiff problem: log-log slope within 0.2 of the order."""
    hs, errs = [], []
    for n in STEPS[method]:
        t = torch.linspace(0, 4.0, n + 1, dtype=F64)
        ys = odebench.odeint(logistic, torch.tensor([0.5], dtype=F64), t, method=method,
                             options={"step_size": 4.0 / n})
        exact = 1 / (1 + torch.exp(-torch.sin(t)))
        hs.append(4.0 / n)
        errs.append(float((ys[:, 0] - exact).abs().max()))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - NOMINAL[method]) < 0.2, (method, slope, errs)


def test_l_stable_where_explicit_methods_stall():
    """y' = -1e6 (y - cos t) on [0, 10]: rodas5p in a few dozen steps; dopri5 runs out of a
    1000-step budget near the start and says the problem may be stiff."""
    t = torch.tensor([0.0, 10.0], dtype=F64)
    y0 = torch.zeros(1, dtype=F64)
    sol = odebench.solve(prothero_robinson, y0, t, method="rodas5p", rtol=1e-6, atol=1e-9)
    assert sol.stats.n_steps < 300
    assert abs(float(sol.ys[-1, 0] - prothero_robinson_exact(t[-1]))) < 1e-7
    with pytest.raises(odebench.MaxStepsExceededError, match="may be stiff") as info:
        odebench.solve(prothero_robinson, y0, t, method="dopri5", rtol=1e-6, atol=1e-9,
                       options={"max_num_steps": 1000})
    assert info.value.partial.t_reached < 0.1


def _step_point_error(method: str, rtol: float) -> tuple[float, int]:
    """(max error at the accepted steps' ends, steps) on Riccati over [0, 3]."""
    records = []
    f = FlatField(riccati, torch.Size([1]), F64, CPU)
    result = integrate(scheme(method, F64, CPU), f, torch.ones(1, dtype=F64), [0.0, 3.0],
                       Stats(), SolverOptions(), rtol, 1e-9, 10_000, observer=records.append)
    points = [(r.t, r.y) for r in records[1:]] + [(3.0, result.ys[-1])]
    return max(abs(float(y[0]) - 1 / (1 + t * t)) for t, y in points), len(records)


@pytest.mark.parametrize("method", sorted(NOMINAL))
def test_dense_output_off_grid(method: str):
    """301 output times cost no extra step; off-grid values from the interpolant (order 4 for
    rodas5p, 3 for rodas4) are within 10x of the error at the steps."""
    step_err, n_steps = _step_point_error(method, 1e-6)
    t = torch.linspace(0, 3, 301, dtype=F64)
    sol = odebench.solve(riccati, torch.ones(1, dtype=F64), t, method=method, rtol=1e-6,
                         atol=1e-9)
    dense_err = float((sol.ys[:, 0] - 1 / (1 + t**2)).abs().max())
    assert sol.stats.n_steps == n_steps
    assert dense_err <= 10 * step_err, (dense_err, step_err)


def test_dense_output_on_a_stiff_problem():
    """After the boundary layer the steps are long (the stiffly accurate step is exact in the
    stiff limit, so the error estimate lets them grow) and the interpolant, which no
    estimate controls, is far less accurate than the steps: measured 1e-4 against 1e-8."""
    t = torch.linspace(0, 10, 201, dtype=F64)
    y0 = torch.zeros(1, dtype=F64)
    sol = odebench.solve(prothero_robinson, y0, t, method="rodas5p", rtol=1e-6, atol=1e-9)
    ends = odebench.solve(prothero_robinson, y0, t[[0, -1]], method="rodas5p", rtol=1e-6,
                          atol=1e-9)
    dense_err = float((sol.ys[:, 0] - prothero_robinson_exact(t)).abs().max())
    print(f"\nProthero-Robinson, rodas5p rtol 1e-6: {sol.stats.n_steps} steps, dense error "
          f"{dense_err:.1e}")
    assert sol.stats.n_steps == ends.stats.n_steps
    assert dense_err < 1e-3


def test_statistics():
    """One Jacobian per step point, one LU per attempt, s - 1 evaluations per attempt plus
    f(t_n, y_n) per step, plus the first evaluation and the initial-step probe."""
    p = problems.get("hires", T=5.0)
    s = solve_forward(p, "rodas5p", 1e-6, 1e-10).stats
    assert s.n_jac == s.n_steps
    assert s.n_lu == s.n_steps + s.n_rejected
    assert s.nfe == 1 + 8 * s.n_steps + 7 * s.n_rejected


def test_batched_state():
    """A batch of stiff linear systems (state [3, 8], one dense 24 x 24 Jacobian) matches the
    closed form."""
    p = problems.get("stiff_linear", stiffness=1e4, n_points=3)
    y0 = torch.stack([p.y0, 2 * p.y0, -p.y0])
    exact = torch.stack([p.closed_form(p.t_eval, y, p.p) for y in y0], dim=1)
    ys = odebench.odeint(p.func(), y0, p.t_eval, method="rodas5p", rtol=1e-8, atol=1e-12)
    assert ys.shape == (len(p.t_eval), 3, 8)
    assert torch.allclose(ys, exact, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("method", sorted(NOMINAL))
def test_reverse_time(method: str):
    t = torch.linspace(2.0, 0.0, 5, dtype=F64)
    ys = odebench.odeint(riccati, torch.full((1,), 0.2, dtype=F64), t, method=method,
                         rtol=1e-9, atol=1e-12)
    assert torch.allclose(ys[:, 0], 1 / (1 + t**2), rtol=1e-7, atol=0)


def test_typed_errors():
    """A blow-up (y' = y^2, y(0) = 1, singular at t = 1) ends in a typed error with a partial
    solution; so does a step budget."""
    t = torch.tensor([0.0, 0.5, 2.0], dtype=F64)
    with pytest.raises((odebench.NonFiniteError, odebench.StepSizeUnderflowError)) as info:
        odebench.solve(lambda t, y: y**2, torch.ones(1, dtype=F64), t, method="rodas5p")
    assert 0.99 < info.value.partial.t_reached < 1.01
    with pytest.raises(odebench.MaxStepsExceededError) as info:
        odebench.solve(riccati, torch.ones(1, dtype=F64), t, method="rodas4",
                       options={"max_num_steps": 3})
    assert info.value.partial.stats.n_steps <= 3


# --- the Test Set -------------------------------------------------------------------------


def _published(name: str, method: str = "rodas5p") -> None:
    p = problems.get(name)
    start = time.perf_counter()
    sol = solve_forward(p, method, 1e-8, p.atol)
    wall = time.perf_counter() - start
    digits = scd(p, sol.ys[-1].numpy())
    s = sol.stats
    print(f"\n{name} {method} rtol 1e-8 atol {p.atol:g}: scd {digits:.2f}, steps {s.n_steps} "
          f"(+{s.n_rejected} rejected), nfe {s.nfe}, n_jac {s.n_jac}, n_lu {s.n_lu}, "
          f"{wall:.1f} s")
    assert digits >= 6


@pytest.mark.parametrize("name", ["rober", "pollu"])
def test_published_values(name: str):
    """rtol 1e-8 with the problem's atol reaches >= 6 significant digits of the Test Set's
    value at the final time."""
    _published(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hires", "vdpol", "orego"])
def test_published_values_slow(name: str):
    """As test_published_values; thousands of steps each (VDPOL, OREGO) or a very small atol."""
    _published(name)


def test_hires_against_scipy_bdf():
    """HIRES at rtol 1e-8, atol 1e-10: no more than twice SciPy BDF's steps, at least its
    accuracy (BDF measured side by side)."""
    p = problems.get("hires")
    sol = solve_forward(p, "rodas5p", 1e-8, 1e-10)
    ours = scd(p, sol.ys[-1].numpy())
    bdf_steps, bdf_scd = scipy_steps(p, "BDF", 1e-8, 1e-10)
    print(f"\nHIRES rtol 1e-8 atol 1e-10: rodas5p {sol.stats.n_steps} steps, scd {ours:.2f}; "
          f"SciPy BDF {bdf_steps} steps, scd {bdf_scd:.2f}")
    assert sol.stats.n_steps <= 2 * bdf_steps
    assert ours >= bdf_scd


def test_float32_completes_with_lower_accuracy():
    """HIRES in float32 at rtol 1e-6 completes in float32 and reports what float32 gives: a
    few digits, fewer than float64 at the same tolerance, never more than float32 holds."""
    p = problems.get("hires")
    low = solve_forward(p.to(dtype=torch.float32), "rodas5p", 1e-6, 1e-10)
    high = solve_forward(p, "rodas5p", 1e-6, 1e-10)
    assert low.ys.dtype == torch.float32
    digits32 = scd(p, low.ys[-1].double().numpy())
    digits64 = scd(p, high.ys[-1].numpy())
    print(f"\nHIRES rtol 1e-6: float32 scd {digits32:.2f} ({low.stats.n_steps} steps), "
          f"float64 scd {digits64:.2f} ({high.stats.n_steps} steps)")
    assert 3.5 <= digits32 < min(digits64, -math.log10(torch.finfo(torch.float32).eps))


# --- gradients ----------------------------------------------------------------------------


def grad_errors(problem: Problem, gradient: str, rtol: float, dp_ref: torch.Tensor,
                dy0_ref: torch.Tensor, options: dict | None = None) -> tuple[float, float]:
    """(dL/dp error, dL/dy0 error) of ``gradient`` for the problem's default loss.

    dL/dp per component relative (as the scaled sensitivities p_i dL/dp_i, with a floor of
    1e-6 of the largest), dL/dy0 relative in the max norm.
    """
    func = problem.func()
    y0 = problem.y0.clone().requires_grad_(True)
    sol = odebench.solve(func, y0, problem.t_eval, method="rodas5p", rtol=rtol,
                         atol=problem.atol, gradient=gradient, options=options)
    problem.loss(sol.ys).backward()
    scaled, scaled_ref = problem.p * func.p.grad, problem.p * dp_ref
    floor = 1e-6 * float(scaled_ref.abs().max())
    dp_err = float(((scaled - scaled_ref).abs() / scaled_ref.abs().clamp(min=floor)).max())
    dy0_err = float((y0.grad - dy0_ref).abs().max() / dy0_ref.abs().max())
    print(f"\n{problem.name} rodas5p {gradient}: dL/dp error {dp_err:.1e}, dL/dy0 error "
          f"{dy0_err:.1e}; steps {sol.stats.n_steps}, backward nfe {sol.stats.nfe_backward}")
    return dp_err, dy0_err


BOUND = {"backprop": 1e-5, "checkpointed": 1e-5, "interpolated": 1e-4}


def closed_form_gradient(problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/dp, dL/dy0 of the default loss through the closed form, by autograd."""
    p = problem.p.clone().requires_grad_(True)
    y0 = problem.y0.clone().requires_grad_(True)
    problem.loss(problem.closed_form(problem.t_eval, y0, p)).backward()
    return p.grad, y0.grad


@pytest.mark.parametrize("gradient", sorted(BOUND))
def test_gradient_stiff_linear(gradient: str):
    """Stiff linear system (eigenvalues -1 ... -1e4 as parameters) against its closed form."""
    p = problems.get("stiff_linear", n=4, stiffness=1e4, n_points=3)
    dp_err, dy0_err = grad_errors(p, gradient, 1e-8, *closed_form_gradient(p))
    assert dp_err <= BOUND[gradient] and dy0_err <= BOUND[gradient]


def test_checkpoint_segments_replay_exactly():
    """checkpoint_every = 3 replays the same steps (Jacobians included) as backprop records."""
    p = problems.get("stiff_linear", n=4, stiffness=1e4, n_points=3)
    grads = []
    for gradient, options in (("backprop", None), ("checkpointed", {"checkpoint_every": 3})):
        func = p.func()
        ys = odebench.odeint(func, p.y0, p.t_eval, method="rodas4", rtol=1e-6, atol=1e-10,
                             gradient=gradient, options=options)
        p.loss(ys).backward()
        grads.append(func.p.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=0)


def test_backsolve_finishes_or_raises_typed_error():
    """The backward re-integration of a stiff decay is unstable; it must end in a result or an
    odebench error, never a hang or a raw exception."""
    p = problems.get("stiff_linear", n=2, stiffness=1e3, n_points=2)
    func = p.func()
    try:
        ys = odebench.odeint(func, p.y0, p.t_eval, method="rodas5p", rtol=1e-6, atol=1e-10,
                             gradient="backsolve", options={"max_num_steps_backward": 300})
        p.loss(ys).backward()
    except odebench.OdeBenchError as err:
        print(f"\nbacksolve: {type(err).__name__}: {err}")
    else:
        assert torch.isfinite(func.p.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize("name, T", [("rober", 1.0), ("hires", 5.0)])
@pytest.mark.parametrize("gradient", [*sorted(BOUND), "backsolve"])
def test_gradient_against_reference(name: str, T: float, gradient: str):
    """Rate-constant and initial-state gradients on a short horizon against
    ``odebench.reference.gradient`` (forward sensitivities, SciPy Radau at rtol 1e-12); slow
    because that reference is (minutes when not cached)."""
    from odebench.reference import gradient as reference_gradient

    p = problems.get(name, T=T)
    ref = reference_gradient(p)
    dp_ref, dy0_ref = torch.from_numpy(ref.dp), torch.from_numpy(ref.dy0)
    if gradient == "backsolve":
        try:
            grad_errors(p, gradient, 1e-8, dp_ref, dy0_ref, {"max_num_steps_backward": 2000})
        except odebench.OdeBenchError as err:
            print(f"\n{name} backsolve: {type(err).__name__}: {err}")
        return
    dp_err, dy0_err = grad_errors(p, gradient, 1e-8, dp_ref, dy0_ref)
    assert dp_err <= BOUND[gradient] and dy0_err <= BOUND[gradient]


def test_projected_cost_of_a_budget_stop():
    """The stiff study turns an explicit run stopped by its budget into the steps and NFE a
    whole run would take, from the partial solution the solver's error carries."""
    from odebench.studies.base import Settings
    from odebench.studies.common import point
    from odebench.studies.stiff import execute, projected_cost

    row = point("stiff", Settings(), "stiff_linear", "odebench", "dopri5", rtol=1e-6, atol=1e-8,
                params={"max_num_steps": 2000})
    measured = execute(row, Settings())
    assert measured.status == "max_steps"
    assert 0 < measured.extra["t_reached"] < 1 and measured.extra["steps_reached"] > 1000
    # stability bound of dopri5 ~3.3 / 1e6: about 3e5 steps over [0, 1]
    assert 1e5 < measured.extra["projected_steps"] < 1e6
    assert measured.extra["projected_nfe"] > 1e6
    assert projected_cost(0.0, 10, 0.0, 1.0, 10) is None


# --- rosenbrock23 (the ode23s triple, a Method class rather than a tableau) ----------------


def test_rosenbrock23_convergence_order():
    """Fixed steps on the logistic problem: log-log slope within 0.2 of 2 (Shampine & Reichelt
    1997, Sec. 4.1)."""
    hs, errs = [], []
    for n in (16, 32, 64, 128):
        t = torch.linspace(0, 4.0, n + 1, dtype=F64)
        ys = odebench.odeint(logistic, torch.tensor([0.5], dtype=F64), t, method="rosenbrock23",
                             options={"step_size": 4.0 / n})
        hs.append(4.0 / n)
        errs.append(float((ys[:, 0] - 1 / (1 + torch.exp(-torch.sin(t)))).abs().max()))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - 2) < 0.2, (slope, errs)
    assert "rosenbrock23" in odebench.STIFF_METHODS and scheme("rosenbrock23", F64, CPU).implicit


def test_rosenbrock23_solves_stiff_and_counts():
    """Prothero-Robinson (lambda 1e6) at rtol 1e-3: bounded steps, the end value to 1e-4, one
    Jacobian per accepted step and one LU per attempt, two new evaluations per attempt (FSAL)."""
    t = torch.tensor([0.0, 10.0], dtype=F64)
    sol = odebench.solve(prothero_robinson, torch.zeros(1, dtype=F64), t, method="rosenbrock23",
                         rtol=1e-3, atol=1e-9)
    st = sol.stats
    assert st.n_steps < 1000
    assert abs(float(sol.ys[-1, 0]) - math.cos(10.0)) < 1e-4
    assert st.n_jac == st.n_steps and st.n_lu == st.n_steps + st.n_rejected
    assert st.nfe == 2 * (st.n_steps + st.n_rejected) + 2  # + f(t0, y0) and the initial-step probe


@pytest.mark.parametrize("gradient", ["checkpointed", "interpolated"])
def test_rosenbrock23_gradients_match_backprop(gradient: str):
    """dL/dy0 through rosenbrock23 by checkpointed replay (the exact discrete gradient: equal to
    backprop's) and by the interpolated adjoint (a continuous one: close)."""
    t = torch.linspace(0.0, 2.0, 5, dtype=F64)
    grads = {}
    for g in ("backprop", gradient):
        y0 = torch.tensor([0.5, 0.3], dtype=F64, requires_grad=True)
        sol = odebench.solve(logistic, y0, t, method="rosenbrock23", rtol=1e-7, atol=1e-9,
                             gradient=g, options={"checkpoint_every": 2})
        (grads[g],) = torch.autograd.grad(sol.ys.sum(), [y0])
    tol = 1e-12 if gradient == "checkpointed" else 1e-4
    torch.testing.assert_close(grads[gradient], grads["backprop"], rtol=tol, atol=tol)


@pytest.mark.parametrize("method", ["rodas5p", "rosenbrock23"])
def test_user_jacobian(method: str):
    """options={"jac": fn}: the user's df/dy replaces the autograd Jacobian (df/dt by central
    differences: two more evaluations per Jacobian); the solution agrees with the autograd one to
    the tolerance, the gradient through checkpointed equals backprop's, and a wrong size or a
    non-callable is refused."""
    def jac(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.diag(torch.cos(t) * (1 - 2 * y))

    t = torch.linspace(0.0, 3.0, 4, dtype=F64)
    y0 = torch.tensor([0.5, 0.2], dtype=F64)
    ref = odebench.solve(logistic, y0, t, method=method, rtol=1e-8, atol=1e-10)
    sol = odebench.solve(logistic, y0, t, method=method, rtol=1e-8, atol=1e-10,
                         options={"jac": jac})
    torch.testing.assert_close(sol.ys, ref.ys, rtol=1e-6, atol=1e-8)
    assert sol.stats.n_steps == ref.stats.n_steps
    assert sol.stats.nfe == ref.stats.nfe + 2 * sol.stats.n_jac
    grads = {}
    for gradient in ("backprop", "checkpointed"):
        yy = y0.clone().requires_grad_(True)
        out = odebench.solve(logistic, yy, t, method=method, rtol=1e-8, atol=1e-10,
                             gradient=gradient, options={"jac": jac})
        (grads[gradient],) = torch.autograd.grad(out.ys.sum(), [yy])
    torch.testing.assert_close(grads["checkpointed"], grads["backprop"], rtol=1e-10, atol=0)
    with pytest.raises(odebench.InvalidInputError, match="4x4|2x2"):
        odebench.solve(logistic, y0, t, method=method, options={"jac": lambda t, y: y})
    with pytest.raises(odebench.InvalidInputError, match="(?i)callable"):
        odebench.solve(logistic, y0, t, method=method, options={"jac": 3})

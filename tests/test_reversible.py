"""The reversible Heun method and gradient="reversible": the exact discrete gradient (against
backprop through the same solver), reconstruction at round-off, saved bytes flat in T, order 2,
the measured linear stability region, where it breaks (Lorenz, stiff) and the refused
combinations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import odebench
from odebench import problems, verify
from odebench.errors import InvalidInputError, NonFiniteError
from odebench.solution import Stats
from odebench.solvers import FlatField
from odebench.solvers.reversible_heun import HeunState, Step, forward_step, reverse_step

RH = "reversible_heun"


def _run(problem, gradient: str, options: dict | None, rtol: float = 1e-6,
         atol: float = 1e-8) -> tuple[np.ndarray, Stats, int]:
    return verify.model_gradient(problem, gradient, method=RH, rtol=rtol, atol=atol,
                                 options=options)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name, kwargs, step", [
    ("harmonic", {}, 0.01), ("kepler", {}, 0.01), ("lorenz", {"T": 0.5}, 1e-3)])
def test_gradient_is_backprop_through_the_same_solver(name: str, kwargs: dict, step: float):
    problem = problems.get(name, **kwargs)
    options = {"step_size": step}
    grad, stats, saved = _run(problem, "reversible", options)
    exact, _, saved_backprop = _run(problem, "backprop", options)
    assert _rel(grad, exact) <= 1e-10
    assert stats.recon_error <= 1e-10  # Lorenz T=0.5: 8e-12 (round-off times e^{14 t})
    assert stats.nfe_backward == 2 * stats.n_steps and stats.n_steps_backward == stats.n_steps
    assert saved == stats.saved_bytes == 3 * problem.y0.numel() * 8  # (y, yhat, fhat)
    assert saved_backprop > 100 * saved


def test_saved_bytes_are_flat_in_T():
    saved = []
    for T in (5.0, 10.0, 20.0):
        _, stats, meter_and_own = _run(problems.get("harmonic", T=T), "reversible",
                                       {"step_size": 0.02})
        saved.append(meter_and_own)
        assert stats.recon_error <= 1e-13
    assert saved[0] == saved[1] == saved[2] == 48


def test_adaptive_steps_are_recorded_and_match_backprop():
    problem = problems.get("harmonic", T=2.0)
    grad, stats, saved = _run(problem, "reversible", None, rtol=1e-5, atol=1e-7)
    exact, back_stats, _ = _run(problem, "backprop", None, rtol=1e-5, atol=1e-7)
    assert back_stats.n_steps == stats.n_steps and stats.n_rejected >= 0
    assert _rel(grad, exact) <= 1e-10
    assert saved == 48 + 16 * stats.n_steps  # the final state and each step's (t, t + h)


def test_reversible_gradient_converges_to_the_reference_at_order_two():
    problem = problems.get("harmonic")
    ref = verify.reference_vector(problem)
    errors = [verify.relative_error(_run(problem, "reversible", {"step_size": h})[0], ref)
              for h in (0.02, 0.01)]
    order = math.log2(errors[0] / errors[1])
    assert 1.8 < order < 2.2, errors


def _linear_field(a: torch.Tensor) -> FlatField:
    return FlatField(lambda t, y: a @ y, torch.Size([a.shape[0]]), torch.float64,
                     torch.device("cpu"))


def _amplification(a: torch.Tensor, h: float) -> float:
    """Spectral radius of one reversible Heun step on y' = a y, in the (y, yhat) space."""
    n = a.shape[0]
    f = _linear_field(a)
    columns = []
    for e in torch.eye(2 * n, dtype=torch.float64):
        y, yhat = e[:n], e[n:]
        s1 = forward_step(f, Step(0.0, h, None), HeunState(y, yhat, a @ yhat))
        columns.append(torch.cat([s1.y, s1.yhat]))
    return float(torch.linalg.eigvals(torch.stack(columns, 1)).abs().max())


@pytest.mark.parametrize("z", [-2.0, -0.5, -0.1, -0.01, 0.1])
def test_unstable_on_the_whole_real_axis(z: float):
    """The linear test equation's step matrix has the eigenvalues z +- sqrt(z^2 + 1) (product
    -1): for real z != 0 one of them is outside the unit circle; for z < 0 it is the parasitic
    root, so a decaying solution is swamped by a mode growing as e^{|lambda| t}."""
    rho = _amplification(torch.tensor([[z]], dtype=torch.float64), 1.0)
    assert rho == pytest.approx(abs(z) + math.sqrt(z * z + 1), rel=1e-12)
    assert rho > 1.0


@pytest.mark.parametrize("omega_h, stable", [(0.5, True), (0.99, True), (1.0, True),
                                             (1.05, False), (2.0, False)])
def test_stable_exactly_on_the_imaginary_segment(omega_h: float, stable: bool):
    rotation = torch.tensor([[0.0, omega_h], [-omega_h, 0.0]], dtype=torch.float64)
    rho = _amplification(rotation, 1.0)
    if stable:
        assert rho == pytest.approx(1.0, abs=1e-7)
    else:
        assert rho > 1.01


def test_reverse_step_inverts_the_forward_step():
    a = torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=torch.float64)
    f = _linear_field(a)
    s0 = HeunState(torch.tensor([1.0, 2.0], dtype=torch.float64),
                   torch.tensor([0.9, 2.1], dtype=torch.float64), None)
    s0.fhat = a @ s0.yhat
    step = Step(0.3, 0.35, None)
    back = reverse_step(f, step, forward_step(f, step, s0))
    for x, y in zip(back.tensors(), s0.tensors()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-15)


def test_lorenz_blows_up_beyond_T_about_1():
    """Lorenz's dissipative direction (Jacobian trace -(sigma + 1 + beta) = -13.7) excites the
    parasitic root: at T = 5 the state is non-finite at every step size tried (a typed error),
    the failure the gate expects (verify.LORENZ_T2)."""
    problem = problems.get("lorenz", T=5.0)
    for step in (0.01, 0.001):
        with pytest.raises(NonFiniteError, match="reversible_heun"):
            _run(problem, "reversible", {"step_size": step})


def test_incompatible_combinations_are_refused():
    problem = problems.get("decay")
    y0, t = problem.y0.clone().requires_grad_(True), problem.t_eval
    with pytest.raises(InvalidInputError, match="method='reversible_heun'"):
        odebench.odeint(problem.func(), y0, t, method="dopri5", gradient="reversible")
    for gradient in ("checkpointed", "interpolated"):
        with pytest.raises(InvalidInputError, match="does not keep"):
            odebench.odeint(problem.func(), y0, t, method=RH, gradient=gradient)


def test_forward_and_backsolve_run_on_reversible_heun():
    """The other gradients treat reversible Heun as any method (both against backprop through
    it; backsolve re-integrates with it, hence only to its accuracy)."""
    problem = problems.get("decay")
    options = {"step_size": 0.01}
    exact = _run(problem, "backprop", options)[0]
    assert _rel(_run(problem, "forward", options)[0], exact) <= 1e-12
    assert _rel(_run(problem, "backsolve", options)[0], exact) <= 1e-3


def test_a_decaying_solution_swamped_by_the_parasitic_mode_is_refused():
    """y' = -10 y at h = 1e-3: the true solution decays as e^{-10 t}, the parasitic mode grows
    as e^{10 t}. At T = 5 the state would be 1e34 times too large: refused. (At T = 1 it is 30%
    wrong, |yhat - y| still below |y|: the guard catches blow-up, not inaccuracy.)"""
    y0 = torch.tensor([1.0], dtype=torch.float64)
    with pytest.raises(NonFiniteError, match="parasitic"):
        odebench.odeint(lambda t, y: -10.0 * y, y0, torch.tensor([0.0, 5.0], dtype=torch.float64),
                        method=RH, options={"step_size": 1e-3})
    ys = odebench.odeint(lambda t, y: -1.0 * y, y0, torch.tensor([0.0, 1.0],
                         dtype=torch.float64), method=RH, options={"step_size": 1e-3})
    assert float(ys[-1]) == pytest.approx(math.exp(-1.0), rel=1e-6)

"""Gradients with respect to the output times ``t`` (odebench.gradients.time_grad)."""

from __future__ import annotations

import pytest
import torch

import odebench
from odebench.gradients import OWN_SOLVER

A = torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=torch.float64)
W = torch.tensor([0.7, -1.3], dtype=torch.float64)

# (method, rtol, options): the tolerances make the discrete solution's finite differences agree
# with the exact flow's derivative well inside gradcheck's atol.
METHOD_SETTINGS = [
    ("dopri5", 1e-11, None),
    ("tsit5", 1e-11, None),
    ("dop853", 1e-11, None),
    ("bosh3", 1e-8, None),
    ("euler", 1e-7, {"step_size": 4e-3}),
    ("midpoint", 1e-7, {"step_size": 1e-2}),
    ("rk4", 1e-7, {"step_size": 2e-2}),
    ("rodas5p", 1e-10, None),
    ("rodas4", 1e-7, None),
]
# fixed steps: the discrete solution differs from the exact flow by O(h^p) in its t-derivative
GRADCHECK_ATOL = {"euler": 2e-2, "bosh3": 1e-4, "midpoint": 1e-3, "rodas4": 1e-4}


def forced(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear and non-autonomous: y' = A y + (sin t, 0)."""
    return y @ A.T.to(y) + torch.sin(t) * torch.tensor([1.0, 0.0], dtype=y.dtype)


# gradients that differentiate whatever method runs (not the ones with a solver of their own)
PORTABLE = [g for g in odebench.GRADIENTS if g not in OWN_SOLVER]
# the reversible gradient with its own solver (second order: fixed steps of 1e-3)
OWN_SETTINGS = [(g, (m, 1e-7, {"step_size": 1e-3})) for g, m in OWN_SOLVER.items()]
GRADCHECK_ATOL["reversible_heun"] = 1e-4


@pytest.mark.parametrize("gradient,setting", [(g, m) for g in PORTABLE for m in METHOD_SETTINGS]
                         + OWN_SETTINGS)
def test_gradcheck_y0_and_t(gradient, setting):
    method, rtol, options = setting
    for times in ([0.0, 0.5, 1.1], [1.1, 0.3, 0.0]):
        y0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
        t = torch.tensor(times, dtype=torch.float64, requires_grad=True)

        def fn(y0, t):
            return odebench.odeint(forced, y0, t, method=method, rtol=rtol, atol=rtol / 10,
                                   gradient=gradient, options=options)

        assert torch.autograd.gradcheck(fn, (y0, t), eps=1e-5, rtol=1e-5,
                                        atol=GRADCHECK_ATOL.get(method, 1e-6), fast_mode=True)


def linear(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y @ A.T.to(y)


@pytest.mark.parametrize("gradient", PORTABLE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_closed_form_linear(gradient, dtype, reverse):
    """dy/dt = A y, L = sum_i w . y(t_i): dL/dt_i = w . A y(t_i) for i >= 1, and
    dL/dt_0 = -sum_{i>=1} w . exp(A (t_i - t_0)) A y0."""
    times = [0.0, 0.4, 1.0, 1.7]
    if reverse:
        times = times[::-1]
    t = torch.tensor(times, dtype=dtype, requires_grad=True)
    y0 = torch.tensor([1.0, -0.5], dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-10
    ys = odebench.odeint(linear, y0, t, rtol=tol, atol=tol / 10, gradient=gradient)
    (ys @ W.to(dtype)).sum().backward()
    t64, y64 = torch.tensor(times, dtype=torch.float64), y0.double()
    exact_ys = torch.stack([torch.linalg.matrix_exp(A * (ti - t64[0])) @ y64 for ti in t64])
    expected = torch.empty(len(times), dtype=torch.float64)
    expected[1:] = exact_ys[1:] @ A.T @ W
    expected[0] = -sum(W @ torch.linalg.matrix_exp(A * (ti - t64[0])) @ A @ y64 for ti in t64[1:])
    assert t.grad is not None and t.grad.dtype == dtype
    assert torch.allclose(t.grad.double(), expected, rtol=1e-4 if dtype == torch.float32 else 1e-8,
                          atol=1e-5 if dtype == torch.float32 else 1e-10)


def test_values_unchanged_and_nfe_counted():
    """The correction terms are exact zeros: the states are those of a solve without t.grad."""
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
    plain = odebench.solve(forced, y0, t)
    timed = odebench.solve(forced, y0, t.clone().requires_grad_(True))
    assert torch.equal(plain.ys, timed.ys.detach())
    assert timed.stats.nfe == plain.stats.nfe + len(t)


def test_only_t_requires_grad_and_mixed_dtypes():
    """Gradients reach t when neither y0 nor parameters require grad; float32 t with a float64
    state gets its gradient in float32."""
    t = torch.tensor([0.0, 1.0], dtype=torch.float32, requires_grad=True)
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
    ys = odebench.odeint(linear, y0, t, gradient="backsolve")
    (ys[-1] @ W).backward()
    y1 = torch.linalg.matrix_exp(A) @ y0
    assert t.grad.dtype == torch.float32
    assert torch.allclose(t.grad.double(), torch.stack([-(W @ A @ y1), W @ A @ y1]), rtol=1e-6)

"""Bad input gets a clear, typed error naming the argument — never a hang or a wrong number."""

from __future__ import annotations

import pytest
import torch

import odebench
from odebench import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    OdeBenchError,
    StepSizeUnderflowError,
)

F64 = torch.float64


def decay(t, y):
    return -y


def y0():
    return torch.ones(2, dtype=F64)


def ts(*values):
    return torch.tensor(values, dtype=F64)


@pytest.mark.parametrize("t, words", [
    (ts(0.0, 1.0, 1.0), "strictly"),
    (ts(0.0, 2.0, 1.0), "strictly"),
    (torch.zeros(2, 2, dtype=F64), "1-D"),
    (ts(0.0, float("nan")), "NaN"),
    (ts(0.0, float("inf")), "inf"),
    (torch.tensor([0, 1]), "floating-point"),
])
def test_bad_times(t, words):
    with pytest.raises(InvalidInputError, match=words):
        odebench.odeint(decay, y0(), t)


def test_bad_initial_state():
    with pytest.raises(NonFiniteError, match="y0"):
        odebench.odeint(decay, torch.tensor([1.0, float("nan")], dtype=F64), ts(0, 1))
    with pytest.raises(InvalidInputError, match="float32 or float64"):
        odebench.odeint(decay, torch.ones(2, dtype=torch.int64), ts(0, 1))
    with pytest.raises(InvalidInputError, match="y0"):
        odebench.odeint(decay, [1.0, 2.0], ts(0, 1))


@pytest.mark.parametrize("func, error, words", [
    (lambda t, y: y[:1], InvalidInputError, "shape"),
    (lambda t, y: y.float(), InvalidInputError, "dtype"),
    (lambda t, y: y * float("nan"), NonFiniteError, "non-finite"),
    (lambda t, y: (y,), InvalidInputError, "Tensor"),
])
def test_bad_vector_field(func, error, words):
    with pytest.raises(error, match=words):
        odebench.odeint(func, y0(), ts(0, 1))


@pytest.mark.parametrize("kwargs, words", [
    ({"rtol": 0.0}, "rtol"),
    ({"atol": -1e-9}, "atol"),
    ({"rtol": float("nan")}, "rtol"),
    ({"method": "rk45"}, "valid methods: euler, midpoint, rk4, bosh3, dopri5"),
    ({"gradient": "adjoint"}, "valid gradients: backprop, backsolve, interpolated, checkpointed"),
    ({"options": {"stepsize": 0.1}}, "unknown option"),
    ({"options": {"max_num_steps": 0}}, "max_num_steps"),
    ({"options": {"step_size": -0.1}}, "step_size"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(InvalidInputError, match=words):
        odebench.odeint(decay, y0(), ts(0, 1), **kwargs)


def test_errors_are_builtin_subclasses():
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(MaxStepsExceededError, RuntimeError)
    assert issubclass(StepSizeUnderflowError, RuntimeError)
    assert issubclass(NonFiniteError, FloatingPointError)
    for cls in (InvalidInputError, MaxStepsExceededError, StepSizeUnderflowError, NonFiniteError):
        assert issubclass(cls, OdeBenchError)


def test_max_steps_carries_partial_solution_and_stiff_hint():
    """An explicit method on a stiff problem stops at the step budget, says where, hints at
    stiffness, and hands back what it computed."""
    def stiff(t, y):
        return -1e6 * (y - torch.cos(t))

    t = torch.linspace(0, 1, 11, dtype=F64)
    with pytest.raises(MaxStepsExceededError) as info:
        odebench.odeint(stiff, torch.zeros(1, dtype=F64), t, options={"max_num_steps": 2000})
    message = str(info.value)
    assert "max_num_steps=2000" in message and "t=" in message and "stiff" in message
    partial = info.value.partial
    assert 0 < partial.t_reached < 1 and partial.h_last > 0
    assert partial.ys.shape[0] == partial.ts.shape[0] >= 1
    assert torch.allclose(partial.ys[1:, 0], torch.cos(partial.ts[1:]).to(F64), atol=1e-5)


def test_fixed_step_budget():
    with pytest.raises(MaxStepsExceededError, match="t="):
        odebench.odeint(decay, y0(), ts(0, 1), method="rk4",
                        options={"step_size": 1e-3, "max_num_steps": 10})


def test_blow_up_is_a_typed_error_not_a_hang():
    """y' = y^2 from y(0)=1 blows up at t=1: the solver stops with a typed error near t=1."""
    with pytest.raises((StepSizeUnderflowError, NonFiniteError, MaxStepsExceededError)) as info:
        odebench.odeint(lambda t, y: y**2, torch.ones(1, dtype=F64), ts(0.0, 2.0))
    assert 0.99 < info.value.partial.t_reached <= 1.0 + 1e-6
    assert info.value.partial.stats.nfe > 0


def test_fixed_step_nonfinite():
    with pytest.raises(NonFiniteError, match="step_size"):
        odebench.odeint(lambda t, y: y**3, torch.ones(1, dtype=F64), ts(0.0, 0.5, 5.0),
                        method="euler", options={"step_size": 0.5})


def test_implicit_budget_has_no_implicit_hint():
    """The stiffness hint suggests an implicit method; an implicit method is told otherwise."""
    with pytest.raises(MaxStepsExceededError) as info:
        odebench.odeint(lambda t, y: torch.cos(50 * t) * torch.ones_like(y),
                        torch.zeros(1, dtype=F64), ts(0.0, 100.0), method="rodas5p",
                        rtol=1e-10, atol=1e-12, options={"max_num_steps": 50})
    assert "STIFF_METHODS" not in str(info.value) and "rodas5p" in str(info.value)


@pytest.mark.parametrize("method", ["dopri5", "rodas5p"])
def test_tiny_first_step_on_a_long_interval(method):
    """Underflow is judged against |t|, not the end time: a transient of width 1e-9 at t=0 on an
    interval of 1e11 (ROBER's) needs first steps far below 1e11 * eps."""
    def pulse(t, y):
        return 1e9 * torch.exp(-1e9 * t) * torch.ones_like(y)

    ys = odebench.odeint(pulse, torch.zeros(1, dtype=F64), ts(0.0, 1e-6, 1e11), method=method,
                         rtol=1e-8, atol=1e-10)
    assert abs(float(ys[-1, 0]) - 1.0) < 1e-6


@pytest.mark.parametrize("gradient", ["backsolve", "interpolated", "checkpointed"])
def test_captured_tensors_refused_by_the_adjoints(gradient):
    """torch.func.functional_call (or any closure) over tensors that require grad: the adjoint
    methods only differentiate y0 and params, so they refuse instead of returning zero grads."""
    module = torch.nn.Linear(2, 2).double()
    weights = {k: v.detach().clone().requires_grad_() for k, v in module.named_parameters()}

    def func(t, y):
        return torch.func.functional_call(module, weights, (y,))

    y0_ = torch.ones(1, 2, dtype=F64, requires_grad=True)
    with pytest.raises(InvalidInputError, match="params="):
        odebench.odeint(func, y0_, ts(0.0, 1.0), gradient=gradient)
    with torch.no_grad():  # a solve that records nothing differentiates nothing: no refusal
        assert odebench.odeint(func, y0_, ts(0.0, 1.0), gradient=gradient).shape == (2, 1, 2)
    ys = odebench.odeint(func, y0_, ts(0.0, 1.0), gradient=gradient, params=list(weights.values()))
    ys.sum().backward()
    assert weights["weight"].grad is not None and float(weights["weight"].grad.abs().sum()) > 0

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


ADJOINTS = ["backsolve", "interpolated", "checkpointed"]


def _riccati(t, y):
    return -(y**2)


@pytest.mark.parametrize("gradient", ADJOINTS)
def test_double_backward_refused_naming_the_method(gradient):
    """create_graph=True through an adjoint: its backward is not differentiable, so the second
    derivative would be silently 0 (backsolve) or a generic autograd error: a typed refusal."""
    y0_ = torch.ones(1, dtype=F64, requires_grad=True)
    ys = odebench.odeint(_riccati, y0_, ts(0.0, 1.0), gradient=gradient)
    with pytest.raises(InvalidInputError, match=f"gradient='{gradient}' does not support double"):
        torch.autograd.grad(ys[-1].sum(), y0_, create_graph=True)


def test_double_backward_through_backprop_is_right():
    """y' = -y^2, y(0) = 1: y(1) = y0 / (1 + y0), d2y/dy0^2 = -2 / (1 + y0)^3 = -0.25."""
    y0_ = torch.ones(1, dtype=F64, requires_grad=True)
    ys = odebench.odeint(_riccati, y0_, ts(0.0, 1.0), rtol=1e-10, atol=1e-12)
    (first,) = torch.autograd.grad(ys[-1].sum(), y0_, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), y0_)
    assert float(first.detach()) == pytest.approx(0.25, rel=1e-7)
    assert float(second) == pytest.approx(-0.25, rel=1e-6)


@pytest.mark.parametrize("gradient", ADJOINTS)
def test_inplace_change_of_y0_or_a_parameter_before_backward_is_refused(gradient):
    module = torch.nn.Linear(2, 2).double()
    y0_ = torch.ones(1, 2, dtype=F64, requires_grad=True)
    ys = odebench.odeint(lambda t, y: module(y), y0_, ts(0.0, 0.5, 1.0), gradient=gradient,
                         params=list(module.parameters()))
    with torch.no_grad():
        y0_.add_(0.1)
    with pytest.raises(InvalidInputError, match="y0 was modified in place"):
        ys.sum().backward()
    ys = odebench.odeint(lambda t, y: module(y), y0_, ts(0.0, 1.0), gradient=gradient,
                         params=list(module.parameters()))
    with torch.no_grad():
        module.weight.mul_(1.01)
    with pytest.raises(InvalidInputError, match=r"params\[0\] \(shape \(2, 2\)\) was modified"):
        ys.sum().backward()


@pytest.mark.parametrize("gradient", ADJOINTS)
def test_tensor_captured_after_the_first_evaluation_is_refused(gradient):
    """``w`` matters only for t > 0.5: the first evaluation (t = 0) cannot see it; the check
    holds for the whole solve, so the adjoints refuse instead of leaving ``w.grad`` None."""
    w = torch.tensor(0.7, dtype=F64, requires_grad=True)

    def func(t, y):
        return -y * w if float(t) > 0.5 else -y

    y0_ = torch.ones(2, dtype=F64, requires_grad=True)
    ys = odebench.odeint(func, y0_, ts(0.0, 1.0), gradient=gradient)
    with pytest.raises(InvalidInputError, match="params="):
        ys.sum().backward()
    ys = odebench.odeint(func, y0_, ts(0.0, 1.0), gradient=gradient, params=[w])
    ys.sum().backward()
    assert w.grad is not None and float(w.grad) < 0


@pytest.mark.parametrize("gradient", ["backprop", *ADJOINTS])
@pytest.mark.parametrize("grad", [True, False])
def test_func_writing_into_y_is_refused_and_y0_is_untouched(gradient, grad):
    def func(t, y):
        y *= 1.0
        return -y

    y0_ = torch.ones(2, dtype=F64, requires_grad=grad)
    with pytest.raises(InvalidInputError, match="modified its input y in place at t=0"):
        odebench.odeint(func, y0_, ts(0.0, 1.0), gradient=gradient)
    assert y0_._version == 0 and torch.equal(y0_.detach(), torch.ones(2, dtype=F64))

    def later(t, y):  # from the 5th evaluation on: the solver's own states
        later.calls += 1
        if later.calls > 5:
            y.mul_(0.5)
        return -y

    later.calls = 0
    with pytest.raises(InvalidInputError, match="in place"):
        odebench.odeint(later, y0_, ts(0.0, 1.0), gradient=gradient)


@pytest.mark.parametrize("method", ["dopri5", "rk4", "rodas5p"])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("wrong, words", [
    (lambda y: y[:1], "returned shape \\(1,\\) at t="),
    (lambda y: y.float(), "returned dtype torch.float32 at t="),
    (lambda y: y.tolist(), "must return a Tensor, got list at t="),
])
def test_later_evaluation_of_wrong_shape_or_dtype_gets_the_clear_message(method, grad, wrong,
                                                                         words):
    def func(t, y):
        return -y if float(t.detach()) < 0.3 else wrong(-y)

    options = {"step_size": 0.1} if method == "rk4" else None
    y0_ = torch.ones(2, dtype=F64, requires_grad=grad)
    with pytest.raises(InvalidInputError, match=words):
        odebench.odeint(func, y0_, ts(0.0, 1.0), method=method, options=options)


@pytest.mark.parametrize("gradient, field", [("backsolve", "backsolve adjoint's augmented"),
                                             ("interpolated", "interpolated adjoint's augmented")])
def test_nonfinite_adjoint_names_the_field(gradient, field):
    y0_ = torch.ones(2, dtype=F64, requires_grad=True)
    ys = odebench.odeint(decay, y0_, ts(0.0, 1.0), gradient=gradient)
    cotangent = torch.ones_like(ys)
    cotangent[-1, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=field) as info:
        ys.backward(cotangent)
    assert "func returned" not in str(info.value)


@pytest.mark.parametrize("kwargs, words", [
    ({"rtol": True}, "rtol must be a positive finite float, got True"),
    ({"atol": False}, "atol"),
    ({"rtol": "1e-6"}, "rtol"),
    ({"options": {"seminorm": "no"}}, "options\\['seminorm'\\] must be True or False"),
    ({"options": {"reanchor": 1}}, "options\\['reanchor'\\] must be True or False"),
    ({"options": {"step_size": "0.1"}}, "options\\['step_size'\\] must be a real number or None"),
    ({"options": {"max_num_steps": 10.5}}, "options\\['max_num_steps'\\] must be an integer"),
    ({"options": {"max_num_steps": True}}, "options\\['max_num_steps'\\] must be an integer"),
    ({"options": {"adjoint_method": 5}}, "options\\['adjoint_method'\\] must be a string"),
    ({"params": torch.ones(2, dtype=F64, requires_grad=True)}, "params must be a sequence"),
    ({"params": 3}, "params must be a sequence"),
])
def test_arguments_are_validated_not_coerced(kwargs, words):
    with pytest.raises(InvalidInputError, match=words):
        odebench.odeint(decay, y0(), ts(0, 1), **kwargs)


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-10), (torch.float64, 1e-30)])
def test_tolerance_below_the_dtype_is_clamped_with_a_warning(dtype, rtol):
    floor = 100 * torch.finfo(dtype).eps
    with pytest.warns(RuntimeWarning, match=f"using rtol={floor:.3g}"):
        clamped = odebench.solve(decay, y0().to(dtype), ts(0.0, 1.0), rtol=rtol, atol=1e-12)
    at_floor = odebench.solve(decay, y0().to(dtype), ts(0.0, 1.0), rtol=floor, atol=1e-12)
    assert clamped.stats.nfe == at_floor.stats.nfe < 2000
    assert torch.equal(clamped.ys, at_floor.ys)


@pytest.mark.parametrize("gradient", ["backsolve", "interpolated"])
def test_backward_budget_names_its_option_and_partial_holds_the_adjoint(gradient):
    y0_ = torch.ones(1, 2, dtype=F64, requires_grad=True)
    t = ts(0.0, 0.5, 1.0, 1.5)
    ys = odebench.odeint(lambda tt, y: -y * torch.cos(5 * tt), y0_, t, gradient=gradient,
                         rtol=1e-10, atol=1e-10, options={"max_num_steps_backward": 12})
    with pytest.raises(MaxStepsExceededError, match="max_num_steps_backward=12") as info:
        ys.sum().backward()
    assert f"gradient='{gradient}'" in str(info.value)
    partial = info.value.partial
    assert partial.ts.dtype == F64 and float(partial.ts[0]) == 1.5
    assert partial.ys.shape == (len(partial.ts), 1, 2)  # dL/dy at those times, y0's shape
    assert torch.allclose(partial.ys[0], torch.ones(1, 2, dtype=F64))  # dL/dy(1.5) = 1
    assert 0.0 < partial.t_reached < float(partial.ts[-1])


def test_partial_solution_times_keep_the_dtype_of_t():
    t = torch.linspace(0, 1, 11, dtype=F64)
    with pytest.raises(MaxStepsExceededError) as info:
        odebench.odeint(lambda tt, y: -1e6 * (y - torch.cos(tt).float()), torch.zeros(1), t,
                        rtol=1e-4, options={"max_num_steps": 500})
    partial = info.value.partial
    assert partial.ts.dtype == F64 and torch.equal(partial.ts, t[: len(partial.ts)])

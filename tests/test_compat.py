"""torchdiffeq's call surface: odeint_adjoint, tuple states, step_t/jump_t/perturb/dtype options,
the output-grid warning of fixed-step methods."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torchdiffeq

import odebench
from odebench.gradients import OWN_SOLVER

# gradients that differentiate whatever method runs (not the ones with a solver of their own)
PORTABLE = [g for g in odebench.GRADIENTS if g not in OWN_SOLVER]

F64 = torch.float64


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 3).double()

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(y))


def _param_grads(module: torch.nn.Module, ys: torch.Tensor) -> list[torch.Tensor]:
    module.zero_grad()
    ys.sum().backward()
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("adjoint_options", [None, {"norm": "seminorm"}])
def test_odeint_adjoint_matches_torchdiffeq(adjoint_options):
    net = Net()
    y0, t = torch.tensor([0.3, -0.2, 0.5], dtype=F64), torch.linspace(0, 1, 4, dtype=F64)
    ours = odebench.odeint_adjoint(net, y0, t, rtol=1e-10, atol=1e-11,
                                   adjoint_options=adjoint_options)
    theirs = torchdiffeq.odeint_adjoint(net, y0, t, rtol=1e-10, atol=1e-11,
                                        adjoint_options=adjoint_options)
    assert torch.allclose(ours, theirs, atol=1e-8)
    for a, b in zip(_param_grads(net, ours), _param_grads(net, theirs)):
        assert torch.allclose(a, b, atol=1e-7)


def test_adjoint_options_map_onto_backsolve_options():
    net = Net()
    y0, t = torch.tensor([0.3, -0.2, 0.5], dtype=F64), torch.linspace(0, 1, 4, dtype=F64)
    ours = odebench.odeint_adjoint(net, y0, t, adjoint_rtol=1e-4, adjoint_atol=1e-5,
                                   adjoint_options={"norm": "seminorm"})
    same = odebench.odeint(net, y0, t, gradient="backsolve",
                           options={"seminorm": True, "adjoint_rtol": 1e-4, "adjoint_atol": 1e-5})
    for a, b in zip(_param_grads(net, ours), _param_grads(net, same)):
        assert torch.equal(a, b)


def test_odeint_adjoint_refusals():
    y0, t = torch.ones(3, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(odebench.InvalidInputError, match="nn.Module"):
        odebench.odeint_adjoint(lambda t, y: -y, y0, t)
    odebench.odeint_adjoint(lambda t, y: -y, y0, t, adjoint_params=())
    net = Net()
    with pytest.raises(odebench.InvalidInputError, match="require grad"):
        odebench.odeint_adjoint(net, y0.requires_grad_(), t, adjoint_params=[net.lin.weight])
    with pytest.raises(odebench.InvalidInputError, match="step_size"):
        odebench.odeint_adjoint(net, y0, t, method="rk4", options={"step_size": 0.1},
                                adjoint_options={"step_size": 0.05})
    with pytest.raises(odebench.InvalidInputError, match="norm"):
        odebench.odeint_adjoint(net, y0, t, adjoint_options={"norm": lambda x: x.abs().max()})


def oscillator(t: torch.Tensor, y: tuple[torch.Tensor, torch.Tensor]):
    """Tuple state (x [2], v [2, 1]): x' = v, v' = -x."""
    x, v = y
    return v.reshape(2), -x.reshape(2, 1)


@pytest.mark.parametrize("gradient", PORTABLE)
def test_tuple_state(gradient):
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    v0 = torch.zeros(2, 1, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.5], dtype=F64)
    xs, vs = odebench.odeint(oscillator, (x0, v0), t, rtol=1e-10, atol=1e-12, gradient=gradient)
    assert xs.shape == (3, 2) and vs.shape == (3, 2, 1)
    assert torch.allclose(xs[-1], x0.detach() * math.cos(1.5), atol=1e-8)
    (xs[-1].sum() + vs[-1].sum()).backward()
    assert torch.allclose(x0.grad, torch.full((2,), math.cos(1.5) - math.sin(1.5), dtype=F64))
    assert torch.allclose(v0.grad, torch.full((2, 1), math.sin(1.5) + math.cos(1.5), dtype=F64))


def test_tuple_state_errors_and_adjoint():
    t = torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(odebench.InvalidInputError, match="tuple of 2"):
        odebench.odeint(lambda t, y: y[0], (torch.ones(2, dtype=F64), torch.ones(1, dtype=F64)), t)
    with pytest.raises(odebench.InvalidInputError, match="share dtype"):
        odebench.odeint(oscillator, (torch.ones(2, dtype=F64), torch.ones(2, 1)), t)
    ys = odebench.odeint_adjoint(oscillator, (torch.ones(2, dtype=F64),
                                              torch.zeros(2, 1, dtype=F64)), t, adjoint_params=())
    assert isinstance(ys, tuple) and ys[1].shape == (2, 2, 1)


def switched(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y' = a(t) y with a = 1 before t = 0.5 and -2 after: y(1) = y0 exp(0.5 - 1.0)."""
    return torch.where(t < 0.5, 1.0, -2.0).to(y) * y


def test_jump_t_saves_rejected_steps():
    y0, t = torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    plain = odebench.solve(switched, y0, t, rtol=1e-8, atol=1e-10)
    jumped = odebench.solve(switched, y0, t, rtol=1e-8, atol=1e-10, options={"jump_t": [0.5]})
    exact = math.exp(-0.5)
    assert plain.stats.n_rejected >= 5
    assert jumped.stats.n_rejected == 0
    assert jumped.stats.nfe < plain.stats.nfe / 2
    assert abs(float(jumped.ys[-1]) - exact) < abs(float(plain.ys[-1]) - exact) / 10


@pytest.mark.parametrize("gradient", PORTABLE)
def test_jump_t_gradients_and_backward_counters(gradient):
    y0 = torch.ones(1, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.25, 1.0], dtype=F64, requires_grad=True)
    sol = odebench.solve(switched, y0, t, rtol=1e-10, atol=1e-12, gradient=gradient,
                         options={"jump_t": torch.tensor([0.5, 3.0]), "step_t": [0.75]})
    assert sol.ys.shape == (3, 1)
    sol.ys[-1].sum().backward()
    y1 = math.exp(-0.5)
    assert abs(float(y0.grad) - y1) < 1e-8
    assert torch.allclose(t.grad, torch.tensor([-y1, 0.0, -2 * y1], dtype=F64), atol=1e-8)
    # forward sensitivities need no backward pass
    assert (sol.stats.nfe_backward > 0) == (gradient != "forward") and sol.stats.n_steps > 0


def test_perturb_matches_torchdiffeq():
    """A field discontinuous at the output times: with perturb, each step's first stage sees the
    right-hand limit."""

    def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(t <= 0.5, 1.0, -1.0).to(y) * torch.ones_like(y)

    y0, t = torch.zeros(1, dtype=F64), torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    for perturb in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ours = odebench.odeint(field, y0, t, method="euler", options={"perturb": perturb})
        theirs = torchdiffeq.odeint(field, y0, t, method="euler", options={"perturb": perturb})
        assert torch.equal(ours, theirs)
    assert float(ours[-1]) == 0.0


def test_time_dtype_option():
    seen = []

    def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(t.dtype)
        return -y

    odebench.odeint(field, torch.ones(2), torch.tensor([0.0, 1.0]), options={"dtype": F64})
    assert set(seen) == {F64}


def test_option_validation():
    y0, t = torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(odebench.InvalidInputError, match="valid keys: .*jump_t"):
        odebench.odeint(switched, y0, t, options={"jumpt": [0.5]})
    with pytest.raises(odebench.InvalidInputError, match="share the point"):
        odebench.odeint(switched, y0, t, options={"jump_t": [0.5], "step_t": [0.5]})
    with pytest.raises(odebench.InvalidInputError, match="perturb"):
        odebench.odeint(switched, y0, t, options={"perturb": 1})
    with pytest.raises(odebench.InvalidInputError, match="dtype"):
        odebench.odeint(switched, y0, t, options={"dtype": torch.int64})
    with pytest.raises(odebench.InvalidInputError, match="NaN"):
        odebench.odeint(switched, y0, t, options={"step_t": [float("nan")]})


def test_fixed_step_without_step_size_warns_on_coarse_grid():
    y0 = torch.ones(1, dtype=F64)
    with pytest.warns(UserWarning, match="one step per output"):
        odebench.odeint(switched, y0, torch.tensor([0.0, 1.0], dtype=F64), method="euler")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        odebench.odeint(switched, y0, torch.linspace(0, 1, 11, dtype=F64), method="euler")
        odebench.odeint(switched, y0, torch.tensor([0.0, 1.0], dtype=F64), method="euler",
                        options={"step_size": 0.01})


def test_pieces_share_the_step_budget():
    """Split at many jump_t points, the solve still stops at max_num_steps in all."""
    y0, t = torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    jumps = [k / 20 for k in range(1, 20)]
    sol = odebench.solve(switched, y0, t, options={"jump_t": jumps})
    assert sol.stats.n_steps >= 20
    with pytest.raises(odebench.MaxStepsExceededError):
        odebench.solve(switched, y0, t, options={"jump_t": jumps, "max_num_steps": 15})

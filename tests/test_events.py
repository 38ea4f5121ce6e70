"""odeint_event: event location and the implicit-function gradient of the event time."""

from __future__ import annotations

import math

import pytest
import torch
import torchdiffeq

import odebench

F64 = torch.float64


class Falling(torch.nn.Module):
    """A ball in free fall: y = (height, velocity), y' = (v, -g); g is a parameter."""

    def __init__(self, g: float = 9.81) -> None:
        super().__init__()
        self.g = torch.nn.Parameter(torch.tensor(g, dtype=F64))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([y[1], -self.g])


def height(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y[0]


@pytest.mark.parametrize("interface,kwargs", [
    (odebench.odeint, {}),
    (odebench.odeint, {"gradient": "backsolve"}),
    (odebench.odeint, {"gradient": "interpolated"}),
    (odebench.odeint_adjoint, {}),
])
def test_bouncing_ball_first_impact(interface, kwargs):
    """t* = t0 + sqrt(2 h / g): dt*/dh = 1 / sqrt(2 h g), dt*/dg = -t*/(2 g), dt*/dt0 = 1,
    dt*/dv0 = 0 at v0 = 0 only through the closed form (h + v0 t - g t^2 / 2 = 0):
    dt*/dv0 = t* / (g t* - v0)."""
    ball = Falling()
    h, g = 2.0, 9.81
    y0 = torch.tensor([h, 0.0], dtype=F64, requires_grad=True)
    t0 = torch.tensor(0.5, dtype=F64, requires_grad=True)
    event_t, sol = odebench.odeint_event(ball, y0, t0, event_fn=height, odeint_interface=interface,
                                         rtol=1e-10, atol=1e-12, **kwargs)
    t_fall = math.sqrt(2 * h / g)
    assert abs(float(event_t.detach()) - (0.5 + t_fall)) < 1e-10
    assert sol.shape == (2, 2) and abs(float(sol[1, 0].detach())) < 1e-9
    event_t.backward()
    assert abs(float(y0.grad[0]) - 1 / math.sqrt(2 * h * g)) < 1e-8
    assert abs(float(y0.grad[1]) - t_fall / (g * t_fall)) < 1e-8
    assert abs(float(t0.grad) - 1.0) < 1e-8
    assert abs(float(ball.g.grad) + t_fall / (2 * g)) < 1e-8


def test_impact_velocity_gradient():
    """The state at the event: v* = -sqrt(2 g h), dv*/dh = -sqrt(g / (2 h))."""
    y0 = torch.tensor([2.0, 0.0], dtype=F64, requires_grad=True)
    _, sol = odebench.odeint_event(Falling(), y0, torch.tensor(0.0, dtype=F64), event_fn=height,
                                   rtol=1e-10, atol=1e-12)
    assert abs(float(sol[1, 1].detach()) + math.sqrt(2 * 9.81 * 2.0)) < 1e-8
    sol[1, 1].backward()
    assert abs(float(y0.grad[0]) + math.sqrt(9.81 / 4.0)) < 1e-7


def test_matches_torchdiffeq_on_a_nonlinear_field():
    """A pendulum released at 1 rad, event when the angle crosses 0.2 (also with a learnable
    threshold in event_fn: torchdiffeq gives that no gradient, odebench does)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2).double()

    def field(t, y):
        return torch.stack([y[1], -torch.sin(y[0])]) + 0.1 * torch.tanh(net(y))

    def crossing(t, y):
        return y[0] - 0.2

    results = []
    for fn in (odebench.odeint_event, torchdiffeq.odeint_event):
        y0 = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
        net.zero_grad()
        event_t, _ = fn(field, y0, torch.tensor(0.0, dtype=F64), event_fn=crossing,
                        rtol=1e-10, atol=1e-12, method="dopri5")
        event_t.backward()
        results.append((event_t.detach(), y0.grad.clone(), net.weight.grad.clone()))
    (t_a, gy_a, gw_a), (t_b, gy_b, gw_b) = results
    assert abs(float(t_a - t_b)) < 1e-7
    assert torch.allclose(gy_a, gy_b, atol=1e-6) and torch.allclose(gw_a, gw_b, atol=1e-6)


def test_event_fn_parameter_and_reverse_time():
    """Event y(t) = c for y' = 1 backwards from (t0=0, y0=0): t* = c (c < 0), dt*/dc = 1."""
    c = torch.tensor(-1.5, dtype=F64, requires_grad=True)
    event_t, sol = odebench.odeint_event(lambda t, y: torch.ones_like(y), torch.zeros(1, dtype=F64),
                                         torch.tensor(0.0, dtype=F64),
                                         event_fn=lambda t, y: y[0] - c, reverse_time=True)
    assert abs(float(event_t.detach()) + 1.5) < 1e-12 and abs(float(sol[-1, 0].detach()) + 1.5) < 1e-12
    event_t.backward()
    assert abs(float(c.grad) - 1.0) < 1e-12


def test_event_that_never_fires():
    with pytest.raises(odebench.EventNotFoundError, match="did not change sign") as info:
        odebench.odeint_event(lambda t, y: torch.ones_like(y), torch.ones(1, dtype=F64),
                              torch.tensor(0.0, dtype=F64), event_fn=lambda t, y: y[0],
                              horizon=50.0)
    assert info.value.t_reached == 50.0
    with pytest.raises(odebench.InvalidInputError, match="zero at t0"):
        odebench.odeint_event(lambda t, y: -y, torch.zeros(1, dtype=F64),
                              torch.tensor(0.0, dtype=F64), event_fn=lambda t, y: y[0])

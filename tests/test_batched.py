"""Per-sample adaptive steps in a batch (``solve(..., batch_dims=1)``, odebench.solvers.batched):
each sample takes the steps it takes alone, gradients match the per-sample solves', bad inputs are
refused with typed errors."""

from __future__ import annotations

import pytest
import torch

import odebench
from odebench.errors import InvalidInputError, MaxStepsExceededError, NonFiniteError, OdeBenchError

F64 = torch.float64
METHODS = ("bosh3", "dopri5", "tsit5", "dop853")


class VanDerPol(torch.nn.Module):
    """Forced Van der Pol with one mu per sample (mu [B, 1]); non-autonomous, so that each
    sample's own time reaches ``func``."""

    def __init__(self, mu: torch.Tensor):
        super().__init__()
        self.mu = torch.nn.Parameter(mu)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, v = y[..., :1], y[..., 1:]
        return torch.cat([v, self.mu * (1 - x ** 2) * v - x + 0.3 * torch.sin(t)], -1)


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    mu = torch.linspace(0.5, 3.0, n, dtype=F64)[:, None]
    y0 = torch.stack([torch.tensor([2.0 - 0.3 * b, 0.1 * b], dtype=F64) for b in range(n)])
    return mu, y0


def _alone(method: str, mu: torch.Tensor, y0: torch.Tensor, t: torch.Tensor, b: int,
           **kw: object) -> odebench.Solution:
    return odebench.solve(VanDerPol(mu[b:b + 1].clone()), y0[b:b + 1], t, method=method,
                          rtol=1e-7, atol=1e-9, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_each_sample_takes_the_steps_it_takes_alone(method):
    mu, y0 = _batch()
    t = torch.linspace(0.0, 4.0, 6, dtype=F64)
    with torch.no_grad():
        sol = odebench.solve(VanDerPol(mu.clone()), y0, t, method=method, rtol=1e-7, atol=1e-9,
                             batch_dims=1)
    per = sol.stats.per_sample
    assert sol.ys.shape == (6, 4, 2)
    for b in range(4):
        with torch.no_grad():
            ref = _alone(method, mu, y0, t, b)
        assert int(per.n_steps[b]) == ref.stats.n_steps
        assert int(per.n_rejected[b]) == ref.stats.n_rejected
        assert int(per.nfe[b]) == ref.stats.nfe
        torch.testing.assert_close(sol.ys[:, b], ref.ys[:, 0], rtol=0, atol=1e-10)
    assert sol.stats.n_steps == int(per.n_steps.sum())
    assert per.n_iterations == int((per.n_steps + per.n_rejected).max())
    # each batched call evaluates every sample: the slowest sample's stages, not the sum
    assert sol.stats.nfe < int(per.nfe.sum())


def test_an_easy_sample_is_not_slowed_by_a_hard_one():
    mu = torch.tensor([[0.1], [8.0]], dtype=F64)
    y0 = torch.tensor([[2.0, 0.0], [2.0, 0.0]], dtype=F64)
    t = torch.linspace(0.0, 10.0, 3, dtype=F64)
    with torch.no_grad():
        per = odebench.solve(VanDerPol(mu), y0, t, rtol=1e-6, atol=1e-8, batch_dims=1)
        joint = odebench.solve(VanDerPol(mu), y0, t, rtol=1e-6, atol=1e-8)
    steps = per.stats.per_sample.n_steps
    assert int(steps[0]) * 2 < int(steps[1])
    assert int(steps[0]) * 2 < joint.stats.n_steps


@pytest.mark.parametrize("decreasing", [False, True])
def test_per_sample_output_times(decreasing):
    mu, y0 = _batch(3)
    rows = [torch.linspace(0.0, 1.0, 5), torch.linspace(0.5, 4.0, 5),
            torch.tensor([-1.0, -0.2, 0.0, 0.1, 2.5])]
    t = torch.stack(rows).to(F64)
    if decreasing:
        t = -t
    with torch.no_grad():
        sol = odebench.solve(VanDerPol(mu.clone()), y0, t, method="dop853", rtol=1e-7,
                             atol=1e-9, batch_dims=1)
    assert sol.ys.shape == (5, 3, 2)
    for b in range(3):
        with torch.no_grad():
            ref = _alone("dop853", mu, y0, t[b], b)
        torch.testing.assert_close(sol.ys[:, b], ref.ys[:, 0], rtol=0, atol=1e-10)
        assert int(sol.stats.per_sample.n_steps[b]) == ref.stats.n_steps
        assert int(sol.stats.per_sample.nfe[b]) == ref.stats.nfe  # frozen once finished


@pytest.mark.parametrize("gradient,method", [("backprop", "dopri5"), ("checkpointed", "dopri5"),
                                             ("checkpointed", "dop853")])
def test_gradients_match_the_per_sample_solves(gradient, method):
    mu, y0 = _batch(3)
    t = torch.stack([torch.linspace(0.0, 2.0 + b, 4, dtype=F64) for b in range(3)])
    field = VanDerPol(mu.clone())
    y = y0.clone().requires_grad_(True)
    sol = odebench.solve(field, y, t, method=method, rtol=1e-7, atol=1e-9, gradient=gradient,
                         batch_dims=1, options={"checkpoint_every": 3})
    (sol.ys ** 2).sum().backward()
    assert sol.stats.nfe_backward > 0
    for b in range(3):
        alone = VanDerPol(mu[b:b + 1].clone())
        yb = y0[b:b + 1].clone().requires_grad_(True)
        ref = odebench.solve(alone, yb, t[b], method=method, rtol=1e-7, atol=1e-9)
        (ref.ys ** 2).sum().backward()
        torch.testing.assert_close(y.grad[b], yb.grad[0], rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(field.mu.grad[b], alone.mu.grad[0], rtol=1e-9, atol=1e-10)


def test_checkpointed_refuses_a_captured_tensor():
    w = torch.tensor(0.5, dtype=F64, requires_grad=True)
    y0 = torch.ones(2, 1, dtype=F64, requires_grad=True)
    with pytest.raises(InvalidInputError, match="params"):
        odebench.solve(lambda t, y: -w * y, y0, torch.tensor([0.0, 1.0], dtype=F64),
                       gradient="checkpointed", batch_dims=1)


def test_one_output_time_returns_y0():
    y0 = torch.ones(3, 2, dtype=F64)
    sol = odebench.solve(lambda t, y: -y, y0, torch.zeros(3, 1, dtype=F64), batch_dims=1)
    assert sol.ys.shape == (1, 3, 2) and torch.equal(sol.ys[0], y0)


def test_step_budget_is_per_sample_and_names_the_sample():
    mu = torch.tensor([[0.1], [20.0]], dtype=F64)
    y0 = torch.tensor([[2.0, 0.0], [2.0, 0.0]], dtype=F64)
    t = torch.tensor([0.0, 30.0], dtype=F64)
    with pytest.raises(MaxStepsExceededError, match="sample 1"):  # it needs 656 attempts
        odebench.solve(VanDerPol(mu), y0, t, rtol=1e-5, atol=1e-7, batch_dims=1,
                       options={"max_num_steps": 300})


def test_a_blow_up_names_the_sample():
    y0 = torch.tensor([[0.1], [1.0]], dtype=F64)
    with pytest.raises(OdeBenchError, match="sample 1"):
        odebench.solve(lambda t, y: y ** 2, y0, torch.tensor([0.0, 2.0], dtype=F64),
                       batch_dims=1)


def _decay(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -y


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_dims": 2}, "batch_dims"),
    ({"batch_dims": True}, "batch_dims"),
    ({"method": "rk4"}, "method 'rk4'"),
    ({"method": "rodas5p"}, "method 'rodas5p'"),
    ({"gradient": "backsolve"}, "gradient='backsolve'"),
    ({"gradient": "interpolated"}, "gradient='interpolated'"),
    ({"options": {"step_size": 0.1}}, "step_size"),
    ({"options": {"jump_t": [0.5]}}, "jump_t"),
    ({"t": torch.zeros(3, 2, 2, dtype=F64)}, r"\[B, T\]"),
    ({"t": torch.linspace(0, 1, 4, dtype=F64).repeat(2, 1)}, "one row per sample"),
    ({"t": torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 2.0]], dtype=F64)}, r"t\[1\]"),
    ({"t": torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 2.0]], dtype=F64)}, "direction"),
    ({"t": torch.tensor([[0.0, 1.0], [0.0, float("nan")], [0.0, 2.0]], dtype=F64)}, "NaN"),
    ({"y0": torch.tensor(1.0, dtype=F64)}, "batch dimension"),
    ({"y0": (torch.ones(3, 1, dtype=F64),)}, "tuple"),
    ({"func": lambda t, y: -y[:1]}, "shape"),
])
def test_bad_inputs_are_refused(kwargs, match):
    args = {"func": _decay, "y0": torch.ones(3, 1, dtype=F64),
            "t": torch.tensor([0.0, 1.0], dtype=F64), "batch_dims": 1, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        odebench.solve(args.pop("func"), args.pop("y0"), args.pop("t"), **args)


def test_time_gradients_are_refused():
    t = torch.tensor([0.0, 1.0], dtype=F64, requires_grad=True)
    with pytest.raises(InvalidInputError, match="respect to t"):
        odebench.solve(_decay, torch.ones(2, 1, dtype=F64), t, batch_dims=1)


def test_a_non_finite_first_evaluation_is_refused():
    with pytest.raises(NonFiniteError):
        odebench.solve(lambda t, y: y / 0.0, torch.ones(2, 1, dtype=F64),
                       torch.tensor([0.0, 1.0], dtype=F64), batch_dims=1)


def test_per_sample_study_grid_says_what_runs():
    from odebench.results import key_of
    from odebench.studies import STUDY_MODULES, Settings, get

    assert "per_sample" in STUDY_MODULES
    study = get("per_sample")
    quick, full = study.grid(Settings(mode="quick")), study.grid(Settings(mode="full"))
    assert {r.batch for r in full} == {2 ** k for k in range(11)}
    assert {r.batch for r in quick} < {r.batch for r in full}
    modes = {(r.backend, r.params["batching"]) for r in full}
    assert {("odebench", "joint"), ("odebench", "per_sample")} <= modes
    assert all(r.method == "dopri5" and r.rtol == 1e-6 and r.atol == 1e-8 for r in full)
    assert len({key_of(r) for r in full}) == len(full)


def test_step_options_act_per_sample_as_alone():
    mu, y0 = _batch(3)
    t = torch.linspace(0.0, 3.0, 4, dtype=F64)
    options = {"first_step": 0.01, "max_step": 0.2}
    with torch.no_grad():
        sol = odebench.solve(VanDerPol(mu.clone()), y0, t, rtol=1e-7, atol=1e-9, batch_dims=1,
                             options=options)
        for b in range(3):
            ref = _alone("dopri5", mu, y0, t, b, options=options)
            assert int(sol.stats.per_sample.n_steps[b]) == ref.stats.n_steps
            torch.testing.assert_close(sol.ys[:, b], ref.ys[:, 0], rtol=0, atol=1e-10)


def test_a_non_finite_trial_step_leaves_the_gradient_finite():
    """A first step far too large overflows the trial stages (rejected); backprop through the
    batch must not turn their zero cotangents into NaN."""
    def cubic(t, y):
        return -y ** 3

    y0 = torch.tensor([[10.0], [0.5]], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    options = {"first_step": 10.0}
    y = y0.clone().requires_grad_(True)
    sol = odebench.solve(cubic, y, t, batch_dims=1, options=options)
    sol.ys[-1].sum().backward()
    assert int(sol.stats.per_sample.n_rejected[0]) > 0
    for b in range(2):
        yb = y0[b:b + 1].clone().requires_grad_(True)
        odebench.solve(cubic, yb, t, options=options).ys[-1].sum().backward()
        torch.testing.assert_close(y.grad[b], yb.grad[0], rtol=1e-9, atol=1e-12)

"""Per-sample adaptive step sizes (odebench.solve(..., batch_dims=1))."""

from __future__ import annotations

import pytest
import torch

import odebench
from odebench.solvers.batched import BatchedStats

F64 = torch.float64


def vdp(mu: torch.Tensor):
    """Van der Pol oscillators, one mu per sample: y [B, 2]."""

    def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([y[:, 1], mu * (1 - y[:, 0] ** 2) * y[:, 1] - y[:, 0]], 1)

    return field


MU = torch.tensor([1.0, 5.0, 12.0, 25.0], dtype=F64)
Y0 = torch.tensor([2.0, 0.0], dtype=F64).repeat(4, 1)


@pytest.mark.parametrize("method", ["bosh3", "dopri5", "tsit5"])
def test_each_sample_steps_as_if_alone(method):
    """Sample b takes exactly the steps of a solve of sample b alone, with its values."""
    t = torch.linspace(0, 6, 7, dtype=F64)
    sol = odebench.solve(vdp(MU), Y0, t, method=method, rtol=1e-6, atol=1e-8, batch_dims=1)
    assert isinstance(sol.stats, BatchedStats) and sol.ys.shape == (7, 4, 2)
    for b in range(4):
        alone = odebench.solve(vdp(MU[b:b + 1]), Y0[b:b + 1], t, method=method, rtol=1e-6,
                               atol=1e-8)
        assert sol.stats.steps_per_sample[b] == alone.stats.n_steps
        assert sol.stats.rejected_per_sample[b] == alone.stats.n_rejected
        assert torch.allclose(sol.ys[:, b], alone.ys[:, 0], atol=1e-10)


def test_joint_solve_takes_more_steps_than_any_sample():
    """One step size for the batch follows the hardest sample everywhere and the joint norm is
    over all samples: more steps than the slowest sample alone."""
    t = torch.linspace(0, 10, 11, dtype=F64)
    per = odebench.solve(vdp(MU), Y0, t, rtol=1e-6, atol=1e-8, batch_dims=1)
    joint = odebench.solve(vdp(MU), Y0, t, rtol=1e-6, atol=1e-8)
    assert joint.stats.n_steps > max(per.stats.steps_per_sample)
    assert torch.allclose(per.ys, joint.ys, atol=1e-4)


def test_per_sample_output_times_and_reverse_time():
    t = torch.stack([torch.linspace(0, s, 5, dtype=F64) for s in (1.0, 2.0, 3.0, 4.0)])
    sol = odebench.solve(vdp(MU), Y0, t, rtol=1e-8, atol=1e-10, batch_dims=1)
    for b in range(4):
        alone = odebench.odeint(vdp(MU[b:b + 1]), Y0[b:b + 1], t[b], rtol=1e-8, atol=1e-10)
        assert torch.allclose(sol.ys[:, b], alone[:, 0], atol=1e-9)
    gentle = vdp(torch.tensor([0.1, 0.3, 0.5, 1.0], dtype=F64))
    ends = odebench.odeint(gentle, Y0, t, rtol=1e-10, atol=1e-12, batch_dims=1)[-1]
    back = odebench.odeint(gentle, ends, t.flip(1), rtol=1e-10, atol=1e-12, batch_dims=1)
    assert back.shape == (5, 4, 2) and torch.allclose(back[-1], Y0, atol=1e-7)


def test_backprop_gradients_match_solo_solves():
    y0 = Y0.clone().requires_grad_(True)
    mu = MU.clone().requires_grad_(True)
    t = torch.linspace(0, 3, 4, dtype=F64)
    odebench.odeint(vdp(mu), y0, t, rtol=1e-9, atol=1e-11, batch_dims=1).sum().backward()
    for b in range(4):
        y0_b, mu_b = Y0[b:b + 1].clone().requires_grad_(True), MU[b:b + 1].clone().requires_grad_(True)
        odebench.odeint(vdp(mu_b), y0_b, t, rtol=1e-9, atol=1e-11).sum().backward()
        assert torch.allclose(y0.grad[b], y0_b.grad[0], rtol=1e-6)
        assert torch.allclose(mu.grad[b], mu_b.grad[0], rtol=1e-6)


def test_gradcheck_small_batch():
    t = torch.linspace(0, 1, 3, dtype=F64)
    y0 = Y0[:2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda y: odebench.odeint(vdp(MU[:2]), y, t, rtol=1e-10, atol=1e-12, batch_dims=1),
        (y0,), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_refusals():
    t = torch.linspace(0, 1, 3, dtype=F64)
    with pytest.raises(odebench.InvalidInputError, match="backprop"):
        odebench.odeint(vdp(MU), Y0, t, gradient="backsolve", batch_dims=1)
    with pytest.raises(odebench.InvalidInputError, match="bosh3, dopri5, tsit5"):
        odebench.odeint(vdp(MU), Y0, t, method="dop853", batch_dims=1)
    with pytest.raises(odebench.InvalidInputError, match="shape"):
        odebench.odeint(vdp(MU), Y0, torch.zeros(3, 3, dtype=F64), batch_dims=1)
    with pytest.raises(odebench.InvalidInputError, match="batch_dims"):
        odebench.odeint(vdp(MU), Y0, t, batch_dims=2)
    with pytest.raises(odebench.MaxStepsExceededError, match="sample"):
        odebench.odeint(vdp(MU), Y0, t, options={"max_num_steps": 3}, batch_dims=1)


def test_per_sample_steps_study_rows():
    """The study's rows: joint steps above the slowest sample's, per-sample counts recorded."""
    from odebench.studies import Settings, get

    study, settings = get("per_sample_steps"), Settings()
    rows = {r.params["mode"]: study.execute(r, settings)
            for r in study.grid(settings) if r.batch == 4 and r.params["mode"] != "torchode"}
    assert rows["joint"].steps > rows["per_sample"].extra["steps_max"]
    assert rows["per_sample"].steps < rows["per_sample"].extra["steps_max"]
    assert all(r.sol_error < 1e-4 for r in rows.values())

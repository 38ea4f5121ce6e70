"""Tests of odebench.models: CNF identities, latent-ODE irregular grids, ODE-Net gradients,
augmented and time-varying dynamics, and smoke training runs that must learn."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from odebench.measure.memory import SavedTensorMeter
from odebench.models import (
    CNF,
    AugmentedNODE,
    LatentODE,
    ODEBlock,
    ODENet,
    ResNet,
    SolverConfig,
    TimeMLP,
    TimeVaryingMLP,
)
from odebench.models import train as tr
from odebench.models.data import (
    TOY_DENSITIES,
    collate_irregular,
    digits,
    sample_toy,
    spirals,
)
from odebench.models.odenet import ConvDynamics, n_parameters

GRADIENTS = ("backprop", "checkpointed", "interpolated", "backsolve")


@pytest.fixture(autouse=True)
def _one_thread():
    """Pin torch to one thread: small models run faster and timings do not fight other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Linear(nn.Module):
    """f(t, z) = z A^T."""

    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.A = nn.Parameter(A.clone())

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return z @ self.A.T


def _grads(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------- CNF


def test_cnf_linear_field_matches_matrix_exponential_and_trace():
    gen = torch.Generator().manual_seed(0)
    A = 0.5 * torch.randn(3, 3, generator=gen, dtype=torch.float64)
    z0 = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    T = 0.7
    cnf = CNF(Linear(A), T=T, trace="exact", rtol=1e-11, atol=1e-12)
    z1, logdet = cnf(z0)
    expected = z0 @ torch.linalg.matrix_exp(A * T).T
    torch.testing.assert_close(z1, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(logdet, torch.full((6,), float(torch.trace(A)) * T,
                                                  dtype=torch.float64), rtol=0, atol=1e-6)
    base = -0.5 * (z0.pow(2).sum(1) + 3 * math.log(2 * math.pi))
    torch.testing.assert_close(cnf.log_prob(z1), base - logdet, rtol=0, atol=1e-6)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_mean_agrees_with_exact_trace(noise):
    torch.manual_seed(1)
    dynamics = TimeMLP(2, (16,)).double()
    z0 = torch.tensor([[0.3, -0.8]], dtype=torch.float64).expand(2000, 2).contiguous()
    with torch.no_grad():
        _, exact = CNF(dynamics, trace="exact", rtol=1e-8, atol=1e-8)(z0[:1])
        _, draws = CNF(dynamics, trace="hutchinson", noise=noise, rtol=1e-8, atol=1e-8)(z0)
    stderr = draws.std() / math.sqrt(len(draws))
    assert draws.std() > 0
    assert abs(float(draws.mean() - exact[0])) < 3 * float(stderr)


def test_cnf_gradient_methods_agree_on_loss():
    torch.manual_seed(2)
    dynamics = TimeMLP(2, (8, 8)).double()
    x = sample_toy("two_moons", 16, seed=0, dtype=torch.float64)
    grads, losses = {}, {}
    for gradient in GRADIENTS:
        cnf = CNF(dynamics, gradient=gradient, rtol=1e-10, atol=1e-10)
        dynamics.zero_grad()
        loss = -cnf.log_prob(x).mean()
        loss.backward()
        grads[gradient], losses[gradient] = _grads(dynamics), float(loss.detach())
        assert cnf.func.solves[-1].nfe_backward > 0
    for gradient in GRADIENTS[1:]:
        assert losses[gradient] == pytest.approx(losses["backprop"], abs=1e-12)
        assert _relative(grads[gradient], grads["backprop"]) < 1e-6


def test_cnf_sample_and_counters():
    torch.manual_seed(3)
    cnf = CNF(TimeMLP(2, (8,)), rtol=1e-4, atol=1e-4)
    x = cnf.sample(5)
    assert x.shape == (5, 2) and bool(torch.isfinite(x).all())
    stats = cnf.func.solves[-1]
    assert stats.nfe == cnf.func.calls > 0


# ---------------------------------------------------------------- latent ODE


@pytest.mark.parametrize("encoder", ["gru", "odernn"])
def test_latent_ode_handles_a_time_grid_per_sample(encoder):
    torch.manual_seed(4)
    dt = torch.float64
    series = [
        (torch.tensor([0.1, 0.4, 0.9], dtype=dt), torch.randn(3, 2, dtype=dt)),
        (torch.tensor([0.2, 0.5, 0.7, 1.3], dtype=dt), torch.randn(4, 2, dtype=dt)),
        (torch.tensor([0.4, 1.1], dtype=dt), torch.randn(2, 2, dtype=dt)),
    ]
    batch = collate_irregular(series)
    assert batch.times.tolist() == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.7, 0.9, 1.1, 1.3])
    assert batch.mask.sum(1).tolist() == [3, 4, 2]
    tight = SolverConfig("dopri5", 1e-10, 1e-10)
    model = LatentODE(encoder=encoder, solver=tight, encoder_solver=tight).double()
    with torch.no_grad():
        mean, logvar = model.encoder(batch, model.t_ref)
        pred = model.predict(batch, batch.times)
        for b, (t, x) in enumerate(series):
            alone = collate_irregular([(t, x)])
            mean_b, logvar_b = model.encoder(alone, model.t_ref)
            torch.testing.assert_close(mean[b], mean_b[0], rtol=0, atol=1e-7)
            torch.testing.assert_close(logvar[b], logvar_b[0], rtol=0, atol=1e-7)
            on_grid = pred[b, batch.mask[b] > 0]
            torch.testing.assert_close(on_grid, model.predict(alone, t)[0], rtol=0, atol=1e-7)
    terms = model.elbo(batch, batch)
    terms.loss.backward()
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_spirals_are_irregular_and_reproducible():
    a, b = spirals(6, n_times=40, seed=3), spirals(6, n_times=40, seed=3)
    assert torch.equal(a.batch.values, b.batch.values)
    assert bool((a.batch.times.diff() > 0).all()) and a.batch.times.diff().std() > 0
    assert len({tuple(m.tolist()) for m in a.batch.mask}) == 6
    assert a.truth.shape == (6, 40, 2) and a.n_cond == 20


# ---------------------------------------------------------------- ODE-Net


@pytest.mark.parametrize(
    ("gradient", "step", "tol"),
    [("backprop", 0.25, 1e-6), ("checkpointed", 0.25, 1e-6), ("backsolve", 0.1, 1e-3),
     ("interpolated", 0.1, 1e-3)],
)
def test_odeblock_gradcheck_float64(gradient, step, tol):
    """gradcheck in the input; a central finite-difference check along a random parameter
    direction (parameters reach the gradient methods through ``func.parameters()``, so they are
    perturbed in place). Adjoint methods solve the continuous adjoint, hence the looser tol."""
    torch.manual_seed(5)
    block = ODEBlock(ConvDynamics(2), SolverConfig("rk4", gradient=gradient, step_size=step))
    block = block.double()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)

    params = list(block.parameters())
    direction = [torch.randn_like(p) for p in params]
    block.zero_grad()
    block(x).pow(2).sum().backward()
    analytic = sum(float((p.grad * v).sum()) for p, v in zip(params, direction, strict=True))
    eps, values = 1e-5, []
    with torch.no_grad():
        for sign in (1, -1):
            for p, v in zip(params, direction, strict=True):
                p.add_(sign * eps * v)
            values.append(float(block(x).pow(2).sum()))
            for p, v in zip(params, direction, strict=True):
                p.sub_(sign * eps * v)
    numeric = (values[0] - values[1]) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=tol, abs=1e-7)


def test_odenet_has_fewer_parameters_than_resnet_and_shapes():
    odenet, resnet = ODENet(channels=16), ResNet(channels=16, n_blocks=4)
    assert n_parameters(odenet) < n_parameters(resnet)
    x = digits().x_test[:3]
    assert odenet(x).shape == resnet(x).shape == (3, 10)
    assert ODENet(channels=8, augment=2, dynamics="mlp")(x).shape == (3, 10)


def test_saved_bytes_smaller_with_adjoint_than_backprop():
    torch.manual_seed(6)
    x = torch.randn(8, 4, 4, 4)
    saved = {}
    for gradient in ("backprop", "backsolve"):
        block = ODEBlock(ConvDynamics(4), SolverConfig(gradient=gradient))
        with SavedTensorMeter() as meter:
            out = block(x.requires_grad_(True))
        out.sum().backward()
        saved[gradient] = meter.bytes + sum(s.saved_bytes for s in block.func.solves)
    assert 0 < saved["backsolve"] < saved["backprop"] / 3


# ---------------------------------------------------------------- augmented / time-varying


def test_time_varying_dynamics_with_every_gradient_method():
    torch.manual_seed(7)
    dynamics = TimeVaryingMLP(3, hidden=8, n_basis=3, kind="legendre").double()
    with torch.no_grad():
        for p in dynamics.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(4, 3, dtype=torch.float64)
    grads = {}
    for gradient in GRADIENTS:
        block = ODEBlock(dynamics, SolverConfig("dopri5", 1e-7, 1e-7, gradient))
        dynamics.zero_grad()
        block(x).pow(2).sum().backward()
        grads[gradient] = _grads(dynamics)
    assert float(dynamics.layers[0].weight.grad[1:].abs().sum()) > 0
    for gradient in GRADIENTS[1:]:
        assert _relative(grads[gradient], grads["backprop"]) < 1e-5


def test_augmented_regressor_pads_state():
    model = AugmentedNODE(3, augment=2, readout="linear", out_dim=1)
    assert model(torch.randn(5, 3)).shape == (5, 1)
    assert model.block.func.dynamics.net[0].in_features == 3 + 2 + 1


def test_augmented_fits_flip_where_plain_cannot_quick():
    plain = tr.train_augmented_toy(iters=40, augment=0)
    augmented = tr.train_augmented_toy(iters=40, augment=1)
    assert plain.test_metrics["final_mse"] > 1.0 - 1e-3
    assert augmented.test_metrics["final_mse"] < 0.5
    assert augmented.nfe_forward[-1] > 0 and plain.nfe_forward[-1] > 0


@pytest.mark.slow
def test_augmented_fits_flip_where_plain_cannot_full():
    plain = tr.train_augmented_toy(quick=False, augment=0)
    augmented = tr.train_augmented_toy(quick=False, augment=1)
    assert plain.test_metrics["final_mse"] > 0.99
    assert augmented.test_metrics["final_mse"] < 1e-3


# ---------------------------------------------------------------- data and smoke training


@pytest.mark.parametrize("name", sorted(TOY_DENSITIES))
def test_toy_densities(name):
    a, b = sample_toy(name, 500, seed=1), sample_toy(name, 500, seed=1)
    assert a.shape == (500, 2) and torch.equal(a, b)
    assert 0.5 < float(a.std()) < 4.0


def _learned(losses: list[float], k: int = 5) -> tuple[float, float]:
    return sum(losses[:k]) / k, sum(losses[-k:]) / k


def test_train_cnf_learns(tmp_path):
    record = tr.train_cnf(iters=30, density="eight_gaussians", plot_dir=tmp_path)
    first, last = _learned(record.losses)
    assert last < first - 0.5, (first, last)
    assert record.test_metrics["test_nll"] < first
    assert min(record.nfe_forward) > 0 and min(record.nfe_backward) > 0
    assert record.peak_saved_bytes > 0 and record.n_params > 0
    assert all(tmp_path.joinpath(p).exists() for p in record.figures) and record.figures


def test_training_is_reproducible():
    a, b = tr.train_cnf(iters=3, seed=4), tr.train_cnf(iters=3, seed=4)
    assert a.losses == b.losses and a.nfe_forward == b.nfe_forward
    assert a.test_metrics["test_nll"] == b.test_metrics["test_nll"]


def test_train_latent_ode_learns():
    record = tr.train_latent_ode(iters=30, encoder="gru")
    first, last = _learned(record.losses)
    assert last < 0.8 * first, (first, last)
    assert {"interp_mse", "extrap_mse"} <= set(record.test_metrics)


def test_train_gru_baseline_learns():
    record = tr.train_gru_baseline(iters=30)
    first, last = _learned(record.losses)
    assert last < 0.8 * first, (first, last)


def test_gru_baseline_beats_predicting_the_mean_by_far():
    # issue 13: the committed baseline's interpolation was dominated by the first grid times
    # (predicted from no data) and its rollout drifted (trained teacher-forced only)
    m = tr.train_gru_baseline(iters=60).test_metrics
    assert m["interp_mse"] < 0.05 * m["mean_interp_mse"], m
    assert m["extrap_mse"] < 0.1 * m["mean_extrap_mse"], m
    assert m["mean_interp_mse"] > 10  # the spirals' spread: predicting the mean is no model


def test_train_odenet_learns_and_records_memory():
    record = tr.train_odenet(gradient="backsolve", epochs=1)
    first, last = _learned(record.losses, k=3)
    assert last < first - 0.5, (first, last)
    assert record.test_metrics["test_error"] < 0.6
    assert min(record.nfe_backward) > 0 and record.peak_saved_bytes > 0


def test_model_rows_say_the_dtype_tolerances_and_configuration_that_trained(tmp_path,
                                                                            monkeypatch):
    # issue 13: the rows said float64; the models train in float32
    from odebench.studies import Settings
    from odebench.studies import models as study

    settings = Settings(mode="quick", dtype="float64")
    rows = study.grid(settings)
    assert {r.dtype for r in rows} == {"float32"}
    assert all((r.rtol is None) == (r.model in ("gru", "resnet", "resnet_memory")) for r in rows)
    monkeypatch.setattr(study, "PLOT_DIRS", {"quick": tmp_path})
    row = next(r for r in rows if r.model == "node_toy")
    row = dataclasses.replace(row, params={**row.params, "iters": 3})
    done = study.execute(row, settings)
    assert done.dtype == "float32" and done.rtol == done.atol == tr.ToyConfig.quick().tol
    assert done.extra["solver"] == {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3,
                                    "gradient": "backprop", "step_size": None}
    assert done.extra["train_config"]["iters"] == 3 and done.peer_method == "dopri5"
    assert done.n_repeats == 3 and done.wall_forward_iqr_s >= 0  # median of 3 iterations


def test_a_model_row_that_disagrees_with_its_record_is_refused():
    from odebench.errors import InvalidInputError
    from odebench.studies import Settings
    from odebench.studies import models as study

    row = next(r for r in study.grid(Settings()) if r.model == "odenet")
    record = tr.TrainRecord("odenet", "backprop", "dopri5", 0, "cpu", 1, dtype="float64",
                            solver={"rtol": row.rtol, "atol": row.atol})
    with pytest.raises(InvalidInputError, match="trained in float64"):
        study._check_what_ran(row, record, uses_ode=True)
    record = dataclasses.replace(record, dtype="float32", solver={"rtol": 1e-9, "atol": 1e-9})
    with pytest.raises(InvalidInputError, match="rtol"):
        study._check_what_ran(row, record, uses_ode=True)

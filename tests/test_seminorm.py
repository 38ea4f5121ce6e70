"""The seminorm: the adjoints' backward norms (per part, per tensor; the seminorm for
interpolated), the warning where a norm option has no effect, the CNF problem, and the
``seminorm`` study's grid and one measured point."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import odebench
from odebench import problems
from odebench.gradients.adjoint_field import backward_norm
from odebench.problems import flows
from odebench.results import key_of
from odebench.solvers import ErrorNorm, SolverOptions
from odebench.studies import get
from odebench.studies import seminorm as study
from odebench.studies.base import Settings
from odebench.studies.common import point
from odebench.studies.gradient_scaling import mlp_params


def _mlp_gradient(gradient: str, rtol: float, atol: float, **options):
    """(dL/dy0, dL/dp) flat and the stats of one solve of a small random MLP field with many
    more parameters (4,482) than states (4)."""
    problem = problems.get("mlp", width=64, dim=2, batch=2, T=5.0, n_points=2)
    func = problem.func()
    y0 = problem.y0.clone().requires_grad_(True)
    sol = odebench.solve(func, y0, problem.t_eval, rtol=rtol, atol=atol, gradient=gradient,
                         options=options or None)
    grads = torch.autograd.grad(problem.loss(sol.ys), [y0, *func.parameters()])
    return torch.cat([g.reshape(-1) for g in grads]), sol.stats


def test_interpolated_seminorm_is_accurate_and_cheaper_where_parameters_dominate():
    """atol << rtol: the parameter adjoints, starting from zero, are measured against atol and
    set the backward steps; the seminorm leaves them out: fewer backward evaluations, the
    gradient still within the tolerance's reach of the reference."""
    reference, _ = _mlp_gradient("checkpointed", 1e-12, 1e-14)
    plain, plain_stats = _mlp_gradient("interpolated", 1e-6, 1e-9, adjoint_norm="per_part")
    semi, semi_stats = _mlp_gradient("interpolated", 1e-6, 1e-9, seminorm=True)
    assert semi_stats.nfe == plain_stats.nfe  # the forward solve is the same
    assert semi_stats.nfe_backward < plain_stats.nfe_backward
    for grad in (plain, semi):
        assert float((grad - reference).norm() / reference.norm()) < 1e-5


def test_backward_norm_parts_per_tensor():
    params = [torch.zeros(3, 2), torch.zeros(0), torch.zeros(5)]
    parse = SolverOptions.parse
    assert backward_norm(parse(None), (4, 4), params) == (None, None)
    assert backward_norm(parse({"adjoint_norm": "per_part"}), (4, 4), params) == (None,
                                                                                  (4, 4, 6, 5))
    assert backward_norm(parse({"seminorm": True}), (4, 4), params) == (8, None)
    assert backward_norm(parse({"seminorm": True, "adjoint_norm": "per_part"}), (4, 4),
                         params) == (8, (4, 4))
    # interpolated's [a, dL/dp]: the seminorm leaves one part, which is no split
    assert backward_norm(parse({"seminorm": True, "adjoint_norm": "per_part"}), (4,),
                         params) == (4, None)


def test_dop853_estimates_are_combined_per_part():
    """DOP853's pair of estimates [n, 2] by parts: the max of each part's own combined norm."""
    gen = torch.Generator().manual_seed(1)
    err = torch.randn(10, 2, generator=gen, dtype=torch.float64)
    err[6:] *= 50.0
    ay = torch.rand(10, generator=gen, dtype=torch.float64)
    ay1 = torch.zeros(10, dtype=torch.float64)
    parts = ErrorNorm(1e-4, 1e-7, 10, (6, 4)).ratio(err.clone(), 0.01, ay, ay1)
    own = [ErrorNorm(1e-4, 1e-7, k).ratio(err[s].clone(), 0.01, ay[s], ay1[s])
           for k, s in ((6, slice(0, 6)), (4, slice(6, 10)))]
    whole = ErrorNorm(1e-4, 1e-7, 10).ratio(err.clone(), 0.01, ay, ay1)
    assert parts == pytest.approx(max(own), rel=1e-14)
    assert parts != pytest.approx(whole, rel=1e-3)


class _LinearField(torch.nn.Module):
    """``dy/dt = W y + b`` (forward sensitivities need the parameters in an nn.Module)."""

    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(2, 2).double()

    def forward(self, t, y):
        return self.inner(y)


@pytest.mark.parametrize(("gradient", "method", "options", "why"), [
    ("backprop", "dopri5", {"seminorm": True}, "no adaptive backward solve"),
    ("checkpointed", "dopri5", {"seminorm": True}, "no adaptive backward solve"),
    ("forward", "dopri5", {"adjoint_norm": "per_part"}, "no adaptive backward solve"),
    ("reversible", "reversible_heun", {"seminorm": True}, "no adaptive backward solve"),
    ("backsolve", "rk4", {"seminorm": True, "step_size": 0.1}, "fixed steps"),
    ("interpolated", "dopri5", {"seminorm": True, "adjoint_method": "euler"}, "fixed steps"),
    ("backsolve", "reversible_heun", {"adjoint_norm": "per_part"}, "one RMS norm"),
    ("interpolated", "dopri5", {"seminorm": True, "adjoint_norm": "per_part"}, "one part"),
])
def test_a_norm_option_without_effect_warns(gradient, method, options, why):
    y0 = torch.ones(2, dtype=torch.float64, requires_grad=True)
    t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match=f"has no effect: .*{why}"):
        sol = odebench.solve(_LinearField(), y0, t, method=method, gradient=gradient,
                             options=options)
    sol.ys.sum().backward()
    assert y0.grad is not None


@pytest.mark.parametrize(("gradient", "options"), [
    ("backsolve", {"seminorm": True}), ("backsolve", {"adjoint_norm": "per_part"}),
    ("backsolve", {"seminorm": True, "adjoint_norm": "per_part"}),
    ("interpolated", {"seminorm": True}), ("interpolated", {"adjoint_norm": "per_part"})])
def test_a_norm_option_that_acts_does_not_warn(gradient, options):
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y0 = torch.ones(2, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sol = odebench.solve(lambda t, y: -w * y, y0, torch.linspace(0.0, 1.0, 3,
                                                                       dtype=torch.float64),
                             gradient=gradient, options=options, params=[w])
        sol.ys.sum().backward()
    assert w.grad is not None


def test_flow_trace_is_exact_and_the_loss_is_the_nll():
    problem = flows.density_flow("pinwheel", batch=5, hidden=(8, 8), seed=3)
    assert problem.p.numel() == flows.n_params(2, (8, 8))
    assert problem.y0.shape == (5, 3) and torch.all(problem.y0[:, 2] == 0)
    y = problem.y0.clone()
    z = y[:, :2].clone().requires_grad_(True)
    out = problem.rhs(torch.tensor(0.3, dtype=torch.float64), torch.cat([z, y[:, 2:]], 1),
                      problem.p)
    trace = sum(torch.autograd.grad(out[:, i].sum(), z, retain_graph=True)[0][:, i]
                for i in range(2))
    torch.testing.assert_close(out[:, 2].detach(), trace, rtol=1e-12, atol=1e-14)
    ys = torch.zeros(2, 5, 3, dtype=torch.float64)
    assert float(problem.loss(ys)) == pytest.approx(torch.log(torch.tensor(2 * torch.pi)).item())
    with pytest.raises(odebench.InvalidInputError, match="density"):
        flows.density_flow("spiral")
    with pytest.raises(odebench.InvalidInputError, match="train_steps"):
        flows.density_flow(train_steps=-1)


def test_flow_training_is_deterministic_and_moves_the_field():
    first = flows.density_flow(batch=4, hidden=(8,), train_steps=2)
    again = flows.density_flow(batch=4, hidden=(8,), train_steps=2)
    untrained = flows.density_flow(batch=4, hidden=(8,))
    assert torch.equal(first.p, again.p)
    assert not torch.equal(first.p, untrained.p)


def test_registered_with_quick_and_full_grids_of_distinct_points():
    assert get("seminorm") is study.STUDY
    quick, full = study.grid(Settings()), study.grid(Settings(mode="full"))
    assert 0 < len(quick) < len(full)
    for rows in (quick, full):
        assert len({key_of(r) for r in rows}) == len(rows)  # no two rows share a key
    assert {r.problem for r in full} >= {"cnf_eight_gaussians", "cnf_pinwheel",
                                         "cnf_checkerboard", "mlp"}
    ours = {(r.gradient, r.params["adjoint_norm"], r.seminorm) for r in quick
            if r.backend == "odebench"}
    assert ("interpolated", "mixed", True) in ours and ("backsolve", "per_part", True) in ours
    assert {r.gradient for r in quick if r.backend == "torchdiffeq"} == {"backsolve",
                                                                         "backsolve_seminorm"}
    for r in full:
        assert r.params["n_params"] > 10 * r.state_dim or r.problem != "mlp"
        assert r.atol == pytest.approx(r.params["atol_ratio"] * r.rtol)


def test_rows_say_the_problems_sizes():
    rows = study.grid(Settings(mode="full"))
    for name, kwargs in study.FULL["cases"]:
        untrained = {**kwargs, "train_steps": 0} if name.startswith("cnf_") else kwargs
        built = study.case_problem(name, untrained)  # training leaves the sizes as they are
        (sizes,) = {(r.state_dim, r.params["n_params"]) for r in rows
                    if r.params["problem_kwargs"] == kwargs}
        assert sizes == (built.y0.numel(), built.p.numel())


@pytest.mark.parametrize(("backend", "gradient", "norm", "semi"), [
    ("odebench", "interpolated", "mixed", True), ("torchdiffeq", "backsolve_seminorm",
                                                  "per_part", True)])
def test_one_point_is_measured(backend, gradient, norm, semi):
    kwargs = {"dim": 2, "width": 16, "depth": 2, "batch": 2, "T": 1.0, "n_points": 2}
    row = point(study.NAME, Settings(), "mlp", backend, "dopri5", gradient, rtol=1e-6,
                atol=1e-8, problem_kwargs=kwargs, width=16, batch=2, state_dim=4, seminorm=semi,
                params={"adjoint_norm": norm, "n_params": mlp_params(16, 2, 2),
                        "atol_ratio": 1e-2})
    measured = study.execute(row, Settings())
    assert measured.status == "ok", measured.message
    assert measured.nfe_backward > 0 and measured.wall_backward_s > 0
    assert measured.grad_error < 1e-4
    assert measured.peer_method == "dopri5" and measured.seminorm is semi
    wrong = dataclasses.replace(row, params={**row.params, "n_params": 1})
    with pytest.raises(odebench.InvalidInputError, match="n_params"):
        study.execute(wrong, Settings())

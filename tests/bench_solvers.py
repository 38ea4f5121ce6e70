"""Micro-benchmarks of the solver core (pytest-benchmark): one step of each method, one Jacobian
and LU of the stiff methods, one VJP of the adjoint fields, and the loop's fixed cost per step.

Not collected by the default run (the file name does not match ``test_*.py``); ``nox -s
microbench`` runs it on one thread, saves JSON under .benchmarks/ and compares with the previous run:

    python -m pytest tests/bench_solvers.py --benchmark-enable --benchmark-autosave
"""

from __future__ import annotations

import pytest
import torch

from odebench.gradients.adjoint_field import vjp
from odebench.solution import Stats
from odebench.solvers import METHODS, FlatField, SolverOptions, integrate, scheme
from odebench.solvers.rosenbrock import Jacobian

F64 = torch.float64
CPU = torch.device("cpu")


def _mlp() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, 4)).double()
    return net, torch.randn(4, 4, dtype=F64)


@pytest.mark.parametrize("method", METHODS)
def test_one_step(benchmark, method: str):
    """One attempted step of ``method`` on a small MLP field (16 states), no graph recorded."""
    net, y0 = _mlp()
    f = FlatField(lambda _t, y: net(y), y0.shape, F64, CPU)
    m = scheme(method, F64, CPU).method
    y = y0.reshape(-1)
    with torch.no_grad():
        state = m.init(f, 0.0, y, Stats(), keeps_stages=False)
        benchmark(lambda: m.step(f, 0.0, y, 0.01, state))


@pytest.mark.parametrize("kind", ["autograd", "central"])
def test_jacobian_and_lu(benchmark, kind: str):
    """One Jacobian [16, 16] (batched autograd or central differences) and its LU."""
    net, y0 = _mlp()
    f = FlatField(lambda _t, y: net(y), y0.shape, F64, CPU)
    jac = Jacobian(f)
    jac.exact = kind == "autograd"
    y = y0.reshape(-1)
    eye = torch.eye(y.numel(), dtype=F64)

    def run():
        dfdy, _ = jac(0.0, y, 0.01, False)
        return torch.linalg.lu_factor_ex(eye / 0.01 - dfdy)

    with torch.no_grad():
        benchmark(run)


def test_adjoint_vjp(benchmark):
    """One evaluation of f with a^T df/dy and a^T df/dp (the adjoint fields' unit of work)."""
    net, y0 = _mlp()
    params = list(net.parameters())
    a = torch.ones_like(y0)
    t = torch.tensor(0.0, dtype=F64)
    benchmark(lambda: vjp(lambda _t, y: net(y), params, t, y0, a))


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_loop_cost_per_step(benchmark, method: str):
    """200 steps on y' = -y (1 state): the loop's own cost per step dominates."""
    f = FlatField(lambda _t, y: -y, torch.Size([1]), F64, CPU)
    sch = scheme(method, F64, CPU)
    opts = SolverOptions(step_size=0.005) if method == "rk4" else SolverOptions(
        max_step=0.005, first_step=0.005)
    y0 = torch.ones(1, dtype=F64)

    def run():
        return integrate(sch, f, y0, [0.0, 1.0], Stats(), opts, 1e-3, 1e-6, 10_000)

    with torch.no_grad():
        benchmark(run)

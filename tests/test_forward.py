"""gradient="forward": forward sensitivities against the float64 reference on the whole non-stiff
registry and on a stiff problem, no backward pass, the memory it keeps, its fallbacks and
refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import odebench
from odebench import problems, verify
from odebench.errors import InvalidInputError
from odebench.gradients import forward

# mlp_large is left out: its sensitivities are n x (n + m) = 8192 x 16544 numbers per stage.
# mlp (64 states, 1,348 parameters: 90,000 sensitivities) takes about 30 s: marked slow.
NONSTIFF = [pytest.param(name, marks=pytest.mark.slow) if name == "mlp" else name
            for name in problems.names(stiff=False) if name != "mlp_large"]
TOL = 1e-9


@pytest.mark.parametrize("name", NONSTIFF)
def test_forward_matches_reference_on_the_nonstiff_registry(name: str):
    problem = problems.get(name)
    grad, stats, _ = verify.model_gradient(problem, "forward", rtol=TOL, atol=TOL)
    error = verify.relative_error(grad, verify.reference_vector(problem))
    assert error <= 1e-6, f"{name}: {error:.3e}"
    assert stats.nfe > 0 and stats.nfe_backward == 0 and stats.n_steps_backward == 0


def test_forward_matches_reference_on_a_stiff_problem_with_rodas5p():
    problem = problems.get("stiff_linear", n=2, stiffness=1e3)
    grad, stats, _ = verify.model_gradient(problem, "forward", method="rodas5p", rtol=1e-6,
                                           atol=problem.atol)
    assert verify.relative_error(grad, verify.reference_vector(problem)) <= 1e-6
    assert stats.n_jac > 0 and stats.nfe_backward == 0


def test_forward_keeps_only_the_output_sensitivities():
    """saved_bytes = T x n x (n + m) float64 numbers, far below backprop's stored graph."""
    problem = problems.get("lotka_volterra")
    _, stats, saved = verify.model_gradient(problem, "forward")
    n, m, t = problem.y0.numel(), problem.p.numel(), len(problem.t_eval)
    assert stats.saved_bytes == saved == t * n * (n + m) * 8
    _, _, saved_backprop = verify.model_gradient(problem, "backprop")
    assert saved * 20 < saved_backprop


class _Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([[-0.5, 1.0], [-1.0, -0.3]],
                                                 dtype=torch.float64))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.a @ y)


def _grads(func: torch.nn.Module, gradient: str) -> torch.Tensor:
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    t = torch.linspace(0.0, 1.0, 4, dtype=torch.float64)
    ys = odebench.odeint(func, y0, t, gradient=gradient, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(ys.square().sum(), [y0, *func.parameters()])
    return torch.cat([g.reshape(-1) for g in grads])


def test_vmap_failure_falls_back_to_one_jvp_per_column_with_a_warning(
        monkeypatch: pytest.MonkeyPatch):
    """A field vmap cannot batch (random operations, say) gets one jvp per column."""
    def refuse(fn):
        def batched(*args):
            raise RuntimeError("vmap: called random operation while in randomness error mode")
        return batched

    func = _Field()
    expected = _grads(func, "forward")
    monkeypatch.setattr(forward, "vmap", refuse)
    with pytest.warns(RuntimeWarning, match="one jvp per column"):
        looped = _grads(func, "forward")
    np.testing.assert_allclose(looped, expected, rtol=1e-12)
    np.testing.assert_allclose(looped, _grads(func, "checkpointed"), rtol=1e-7)


def test_params_outside_the_module_are_refused():
    a = torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="functional_call"):
        odebench.odeint(lambda t, y: a @ y, y0, torch.linspace(0.0, 1.0, 3,
                        dtype=torch.float64), gradient="forward", params=[a])


class _NoJvp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return -y

    @staticmethod
    def backward(ctx, grad):
        return -grad


def test_a_field_without_forward_mode_ad_is_refused():
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    with pytest.raises(InvalidInputError, match="forward-mode AD"), \
            pytest.warns(RuntimeWarning, match="vmap cannot batch"):
        odebench.odeint(lambda t, y: _NoJvp.apply(y), y0,
                        torch.linspace(0.0, 1.0, 3, dtype=torch.float64), gradient="forward")

"""The gradient-correctness gate, and proof that it can fail: faults injected into each gradient
method by monkeypatching must all be caught (mutation score 100%)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch

import odebench
from odebench import gradients, verify
from odebench.gradients import backsolve, checkpointed, interpolated
from odebench.gradients.trajectory import Trajectory
from odebench.solvers.func import FlatField

MUTATION_CASES = (verify.Case("decay", "decay"), verify.Case("lotka_volterra", "lotka_volterra"),
                  *verify.OPTION_CASES)
# Faults are judged at a looser tolerance than the gate's own run (cheaper; budgets unchanged):
# a correct method stays well inside 1e-5 there, as test_correct_methods_pass_at_mutation_tol shows.
MUTATION_TOL = 1e-7
SCORE: dict[str, bool] = {}


class _FlipGrad(torch.autograd.Function):
    """Identity forward, negated vector-Jacobian product backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def _flip_field_vjp(mp: pytest.MonkeyPatch) -> None:
    original = FlatField.__call__
    mp.setattr(FlatField, "__call__", lambda self, t, y: _FlipGrad.apply(original(self, t, y)))


def _flip_adjoint_vjp(module) -> Callable[[pytest.MonkeyPatch], None]:
    def inject(mp: pytest.MonkeyPatch) -> None:
        original = module.vjp

        def flipped(*args):
            fy, g_y, g_p = original(*args)
            return fy, -g_y, g_p

        mp.setattr(module, "vjp", flipped)
    return inject


def _drop_jump(module) -> Callable[[pytest.MonkeyPatch], None]:
    def inject(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(module, "add_jump", lambda a, g: a)
    return inject


def _drop_last_param_entry(module) -> Callable[[pytest.MonkeyPatch], None]:
    def inject(mp: pytest.MonkeyPatch) -> None:
        original = module.split_params

        def leaky(flat, params):
            parts = [p.clone() for p in original(flat, params)]
            parts[-1].view(-1)[-1] = 0.0
            return parts

        mp.setattr(module, "split_params", leaky)
    return inject


def _detach_y0(name: str) -> Callable[[pytest.MonkeyPatch], None]:
    def inject(mp: pytest.MonkeyPatch) -> None:
        original = gradients.GRADIENTS[name]
        mp.setitem(gradients.GRADIENTS, name, lambda call, stats: original(
            dataclasses.replace(call, y0=call.y0.detach()), stats))
    return inject


def _shift_interpolant_time(mp: pytest.MonkeyPatch) -> None:
    original = Trajectory.__call__
    mp.setattr(Trajectory, "__call__", lambda self, t: original(self, t - 0.01 * self.sign))


def _previous_checkpoint(records, i: int) -> torch.Tensor:
    """The state stored before record ``i`` (record 0's for the first)."""
    kept = [r.y for r in records[:i] if r.y is not None]
    return (kept[-1] if kept else records[0].y).detach()


def _stale_checkpoint(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(checkpointed, "checkpoint_state", _previous_checkpoint)


def _stale_checkpoint_when_sparse(mp: pytest.MonkeyPatch) -> None:
    """Only with checkpoint_every > 1 (the record before a segment keeps no state): the
    segment restarts from the previous segment's checkpoint."""
    def stale(records, i):
        sparse = i > 0 and records[i - 1].y is None
        return _previous_checkpoint(records, i) if sparse else records[i].y.detach()

    mp.setattr(checkpointed, "checkpoint_state", stale)


def _reanchor_to_wrong_output(mp: pytest.MonkeyPatch) -> None:
    """With reanchor, the adjoint continues from the output it started from, not the one it
    reached (a no-op without reanchor)."""
    mp.setattr(backsolve, "anchored_state",
               lambda ys_flat, i, y_back, reanchor: ys_flat[i + 1] if reanchor else y_back)


def _drop_checkpoint_jumps(mp: pytest.MonkeyPatch) -> None:
    last = len(MUTATION_CASES[0].problem().t_eval) - 1

    def only_final(grad_flat, indices):
        return [grad_flat[i] if i == last else torch.zeros_like(grad_flat[i]) for i in indices]

    mp.setattr(checkpointed, "output_cotangents", only_final)


def _checkpoint_param_left_out(mp: pytest.MonkeyPatch) -> None:
    def leaky(total, grads):
        for acc, g in zip(total, grads):
            if g is not None:
                g = g.clone()
                g.view(-1)[-1] = 0.0
                acc.add_(g)

    mp.setattr(checkpointed, "accumulate", leaky)


FAULTS: dict[str, tuple[str, Callable[[pytest.MonkeyPatch], None]]] = {
    "backprop: sign flipped in the field's VJP": ("backprop", _flip_field_vjp),
    "backprop: y0 detached": ("backprop", _detach_y0("backprop")),
    "backsolve: sign flipped in the adjoint VJP": ("backsolve", _flip_adjoint_vjp(backsolve)),
    "backsolve: adjoint jump at output times dropped": ("backsolve", _drop_jump(backsolve)),
    "backsolve: a parameter's gradient left out": ("backsolve",
                                                   _drop_last_param_entry(backsolve)),
    "backsolve: y0 detached": ("backsolve", _detach_y0("backsolve")),
    "backsolve (reanchor): anchored to the wrong output": ("backsolve",
                                                          _reanchor_to_wrong_output),
    "interpolated: sign flipped in the adjoint VJP": ("interpolated",
                                                      _flip_adjoint_vjp(interpolated)),
    "interpolated: adjoint jump at output times dropped": ("interpolated",
                                                           _drop_jump(interpolated)),
    "interpolated: a parameter's gradient left out": ("interpolated",
                                                      _drop_last_param_entry(interpolated)),
    "interpolated: wrong interpolant time": ("interpolated", _shift_interpolant_time),
    "interpolated: y0 detached": ("interpolated", _detach_y0("interpolated")),
    "checkpointed: stale checkpoint": ("checkpointed", _stale_checkpoint),
    "checkpointed (checkpoint_every > 1): stale checkpoint": ("checkpointed",
                                                             _stale_checkpoint_when_sparse),
    "checkpointed: sign flipped in the field's VJP": ("checkpointed", _flip_field_vjp),
    "checkpointed: adjoint jump at output times dropped": ("checkpointed",
                                                           _drop_checkpoint_jumps),
    "checkpointed: a parameter's gradient left out": ("checkpointed",
                                                      _checkpoint_param_left_out),
    "checkpointed: y0 detached": ("checkpointed", _detach_y0("checkpointed")),
}


def test_gate_passes_on_correct_methods():
    """The quick verification set passes with the real gradient methods (Lorenz T=2 included:
    backsolve's drift must be detected there)."""
    report = verify.run(verify.QUICK_CASES)
    assert report.ok, verify.format_table(report)
    lorenz2 = [r for r in report.results if r.problem == "lorenz T=2" and r.gradient == "backsolve"]
    assert lorenz2 and (lorenz2[0].grad_error > 1e-2 or lorenz2[0].status != "ok")
    ran = {(r.problem, r.gradient) for r in report.results}
    assert ("lotka_volterra reanchor", "backsolve") in ran
    assert ("lotka_volterra ckpt/3", "checkpointed") in ran
    assert ("lotka_volterra reanchor", "checkpointed") not in ran  # the option concerns backsolve


def test_correct_methods_pass_at_mutation_tol():
    """The control group: without a fault every method passes the mutation cases."""
    report = verify.run(MUTATION_CASES, tol=MUTATION_TOL)
    assert report.ok, verify.format_table(report)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_gate_catches_fault(fault: str, monkeypatch: pytest.MonkeyPatch):
    method, inject = FAULTS[fault]
    inject(monkeypatch)
    report = verify.run(MUTATION_CASES, (method,), tol=MUTATION_TOL)
    SCORE[fault] = not report.ok
    assert not report.ok, f"fault not caught: {fault}\n{verify.format_table(report)}"


def test_mutation_score_is_complete():
    """Runs after the fault tests (file order): every injected fault was caught."""
    missing = [f for f in FAULTS if f not in SCORE]
    if missing:
        pytest.skip("fault tests were deselected")
    caught = sum(SCORE.values())
    print(f"\nmutation score: {caught}/{len(FAULTS)} ({100 * caught / len(FAULTS):.0f}%)")
    assert caught == len(FAULTS)


def test_cli_verify_exit_code_reflects_breach(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """`odebench verify` exits 1 on a breach and writes its JSON."""
    from odebench.cli import main

    monkeypatch.setattr(verify, "QUICK_CASES", MUTATION_CASES)
    assert main(["verify", "--quick", "--gradient", "backprop",
                 "--json", str(tmp_path / "ok.json")]) == 0
    _detach_y0("backprop")(monkeypatch)
    assert main(["verify", "--quick", "--gradient", "backprop",
                 "--json", str(tmp_path / "bad.json")]) == 1
    assert '"ok": false' in (tmp_path / "bad.json").read_text()


@pytest.mark.parametrize("gradient", ["backprop", "checkpointed"])
def test_gradcheck(gradient: str):
    """torch.autograd.gradcheck (float64 finite differences) through the whole solve, at fixed
    steps so that the discrete solution is a smooth function of its inputs."""
    a = torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)

    def solve(y0, a):
        return odebench.odeint(lambda t, y: torch.tanh(a @ y), y0, t, method="dopri5",
                               gradient=gradient, params=[a], options={"step_size": 0.1})

    assert torch.autograd.gradcheck(solve, (y0, a), atol=1e-6, rtol=1e-5)


def test_budgets_are_documented():
    assert "1e-5" in verify.__doc__ and "1e-8" in verify.__doc__
    assert math.isinf(verify.Budget().max_error)

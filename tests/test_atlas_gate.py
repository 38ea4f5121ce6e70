"""The gradient gate catches faults injected into ``forward`` and ``reversible`` (mutation score
100%), and passes both without a fault. The faults shared with the other methods come from
test_gate (``reversible`` sums its parameter gradients with ``checkpointed.accumulate``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from test_gate import _checkpoint_param_left_out, _detach_y0, _flip_field_vjp

from odebench import verify
from odebench.gradients import forward, reversible

DECAY = verify.Case("decay", "decay")
CASES = {"forward": (DECAY, verify.Case("lotka_volterra", "lotka_volterra")),
         "reversible": (DECAY,)}  # reversible Heun at a fixed step: lotka_volterra is 10,000
MUTATION_TOL = 1e-7
SCORE: dict[str, bool] = {}


def _flip_jvp(mp: pytest.MonkeyPatch) -> None:
    original = forward.jvp

    def flipped(f, primals, tangents):
        out, tangent = original(f, primals, tangents)
        return out, -tangent

    mp.setattr(forward, "jvp", flipped)


def _drop_parameter_columns(mp: pytest.MonkeyPatch) -> None:
    original = forward._split_columns
    mp.setattr(forward, "_split_columns",
               lambda basis, params: [torch.zeros_like(c) for c in original(basis, params)])


def _only_last_output(mp: pytest.MonkeyPatch) -> None:
    original = forward.contract

    def last(grad_flat, sens):
        return original(grad_flat[-1:], sens[-1:])

    mp.setattr(forward, "contract", last)


def _bad_reconstruction(mp: pytest.MonkeyPatch) -> None:
    original = reversible.reconstruct

    def off(f, step, s1):
        y, yhat, fhat = original(f, step, s1)
        return (y + 1e-3).detach().requires_grad_(True), yhat, fhat

    mp.setattr(reversible, "reconstruct", off)


def _drop_jumps(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(reversible, "add_jump", lambda a, g: a)


FAULTS: dict[str, tuple[str, Callable[[pytest.MonkeyPatch], None]]] = {
    "forward: sign flipped in the JVP": ("forward", _flip_jvp),
    "forward: df/dp columns dropped": ("forward", _drop_parameter_columns),
    "forward: only the last output's sensitivities contracted": ("forward", _only_last_output),
    "forward: y0 detached": ("forward", _detach_y0("forward")),
    "reversible: sign flipped in the field's VJP": ("reversible", _flip_field_vjp),
    "reversible: reconstruction off by 1e-3": ("reversible", _bad_reconstruction),
    "reversible: adjoint jump at output times dropped": ("reversible", _drop_jumps),
    "reversible: a parameter's gradient left out": ("reversible", _checkpoint_param_left_out),
    "reversible: y0 detached": ("reversible", _detach_y0("reversible")),
}


@pytest.mark.parametrize("gradient", list(CASES))
def test_correct_methods_pass(gradient: str):
    report = verify.run(CASES[gradient], (gradient,), tol=MUTATION_TOL)
    assert report.ok, verify.format_table(report)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_gate_catches_fault(fault: str, monkeypatch: pytest.MonkeyPatch):
    gradient, inject = FAULTS[fault]
    inject(monkeypatch)
    report = verify.run(CASES[gradient], (gradient,), tol=MUTATION_TOL)
    SCORE[fault] = not report.ok
    assert not report.ok, f"fault not caught: {fault}\n{verify.format_table(report)}"


def test_mutation_score_is_complete():
    """Runs after the fault tests (file order): every injected fault was caught."""
    missing = [f for f in FAULTS if f not in SCORE]
    if missing:
        pytest.skip("fault tests were deselected")
    assert sum(SCORE.values()) == len(FAULTS)

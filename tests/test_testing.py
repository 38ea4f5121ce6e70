"""odebench.testing, its pytest plugin and ``odebench verify --model``: the check passes on
correct configurations and fails, naming the worst tensor and its error, on broken ones."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import odebench
from odebench import problems
from odebench.cli import main
from odebench.measure import pinned_threads
from odebench.models.cnf import TimeMLP
from odebench.testing import (
    FD_MAX_ENTRIES,
    REFERENCE_SCOPE,
    GradientReport,
    assert_gradients_close,
    check_gradient_methods,
    check_gradients,
    default_budget,
    projection_loss,
    random_directions,
)

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: a second intra-op thread only spins (4-10x the CPU time under load)."""
    with pinned_threads(1):
        yield


class _LinearWithSignError(torch.autograd.Function):
    """``y @ a.T`` whose backward returns the gradient w.r.t. ``a`` with the wrong sign."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y, a)
        return y @ a.T

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, a = ctx.saved_tensors
        return grad @ a, -(grad.T @ y)


class DampedRotation(nn.Module):
    """``dy/dt = y @ a.T``, a damped rotation; ``y`` is ``[batch, 2]``; 4 parameters."""

    def __init__(self, broken: bool = False):
        super().__init__()
        self.broken = broken
        self.a = nn.Parameter(torch.tensor([[-0.1, 1.0], [-1.0, -0.1]], dtype=torch.float64))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.broken:
            return _LinearWithSignError.apply(y, self.a)
        return y @ self.a.T


def _rotation_ivp() -> tuple[torch.Tensor, torch.Tensor]:
    y0 = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=torch.float64)
    return y0, torch.linspace(0.0, 2.0, 5, dtype=torch.float64)


def _assert_names_worst(message: str, report: GradientReport) -> None:
    assert f"worst tensor '{report.worst}'" in message
    assert f"{report.worst_error:.3e}" in message


def test_registry_mlp_passes_every_gradient_method():
    problem = problems.get("mlp", width=16, dim=4, batch=4)
    reports = check_gradient_methods(problem.func(), problem.y0, problem.t_eval,
                                     odebench.GRADIENTS)
    assert [r.gradient for r in reports] == list(odebench.GRADIENTS)
    for report in reports:
        assert report.ok, str(report)
        assert report.reference == "directional"  # 16 + 420 entries > FD_MAX_ENTRIES
        assert set(report.errors) == {"y0", "p"}
        assert report.shapes == {"y0": (4, 4), "p": (420,)}
        assert report.budget == pytest.approx(1e-4)
        assert report.run.nfe > 0
        # forward sensitivities need no backward pass
        assert (report.run.nfe_backward > 0) == (report.gradient != "forward")
        # the directional reference runs forward solves only: no backward pass it could trust
        assert report.reference_run.nfe > 0 and report.reference_run.nfe_backward == 0
    backsolve = reports[list(odebench.GRADIENTS).index("backsolve")]
    assert backsolve.run.recon_error is not None and backsolve.run.recon_error < 1e-6


def test_float32_time_conditioned_cnf_dynamics_pass():
    torch.manual_seed(0)
    func = TimeMLP(2, hidden=(16, 16))
    z0, t = torch.randn(8, 2), torch.linspace(0.0, 1.0, 3)
    with pytest.warns(RuntimeWarning, match="below what torch.float32 resolves"):
        reports = check_gradient_methods(func, z0, t, ("backprop", "backsolve"))
    eps = torch.finfo(torch.float32).eps
    for report in reports:
        assert report.ok, str(report)
        assert report.dtype == "float32"
        assert report.rtol == pytest.approx(100 * eps)  # 1e-6 is below what float32 resolves
        assert report.budget == pytest.approx(100 * report.rtol)
        assert "layers.0.linear.weight" in report.errors
    assert func.layers[0].linear.weight.dtype == torch.float32
    assert all(p.grad is None for p in func.parameters())


def test_stiff_problem_passes_with_an_implicit_method():
    if not odebench.STIFF_METHODS:
        pytest.skip("odebench.STIFF_METHODS is empty: no implicit method to check")
    problem = problems.get("stiff_linear", n=2, stiffness=1e3)
    report = check_gradients(problem.func(), problem.y0, problem.t_eval,
                             method=odebench.STIFF_METHODS[0], rtol=1e-4, atol=1e-6,
                             reference="checkpointed")
    assert report.ok, str(report)
    assert report.reference_settings.startswith(odebench.STIFF_METHODS[0])


def test_wrong_custom_backward_fails_and_names_the_parameter():
    y0, t = _rotation_ivp()
    good = check_gradients(DampedRotation(), y0, t)
    assert good.ok, str(good)
    report = check_gradients(DampedRotation(broken=True), y0, t)
    assert report.reference == "fd"  # 8 entries <= FD_MAX_ENTRIES: independent of autograd
    assert not report.ok
    assert report.worst == "a" and report.worst_error > 0.5
    assert report.errors["y0"] <= report.budget
    _assert_names_worst(str(report), report)
    assert "BREACH" in str(report)


def test_backsolve_on_lorenz_t2_fails():
    problem = problems.get("lorenz", T=2.0)
    report = check_gradients(problem.func(), problem.y0, problem.t_eval, gradient="backsolve",
                             rtol=1e-8, atol=1e-8, reference="checkpointed")
    assert not report.ok
    if not report.stopped:
        assert report.worst_error > 1e-2
        assert report.run.recon_error > 1e-3
        _assert_names_worst(str(report), report)
    else:
        assert "the run stopped" in str(report)


def test_loose_tolerance_breaks_a_stated_budget():
    problem = problems.get("mlp", width=16, dim=4, batch=4)
    func, y0, t = problem.func(), problem.y0, problem.t_eval
    tight = check_gradients(func, y0, t, rtol=1e-7, atol=1e-9, budget=1e-5)
    assert tight.ok, str(tight)
    loose = check_gradients(func, y0, t, rtol=1e-2, atol=1e-4, budget=1e-5)
    assert not loose.ok
    assert loose.budget_source == "given"
    _assert_names_worst(str(loose), loose)


def test_assert_gradients_close_raises_with_the_report():
    y0, t = _rotation_ivp()
    assert assert_gradients_close(DampedRotation(), y0, t).ok
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(DampedRotation(broken=True), y0, t)
    message = str(info.value)
    assert message.startswith("odebench gradient check FAILED (dopri5 / backprop)")
    assert "worst tensor 'a'" in message


@pytest.mark.parametrize("reference", ["fd", "directional", "checkpointed", "forward"])
def test_every_reference_passes_a_correct_model(reference):
    y0, t = _rotation_ivp()
    if reference == "forward":  # SciPy with a torch.func Jacobian per step: keep it short
        y0, t = y0[:1], t[:2] / 4
    report = check_gradients(DampedRotation(), y0, t, reference=reference)
    assert report.ok, str(report)
    assert report.reference == reference
    assert report.worst_error < 1e-6


class _TanhFromInput(torch.autograd.Function):
    """tanh whose backward uses ``1 - x**2`` of the input ``x`` instead of ``1 - tanh(x)**2``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (1 - x**2)


class TanhMLP(nn.Module):
    """``dy/dt = W2 tanh(W1 y + b1) + b2`` on ``y`` [2, 4]: 292 parameters + 8 states = 300."""

    def __init__(self, broken: bool = False):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.broken = broken
        self.l1, self.l2 = nn.Linear(4, 32).double(), nn.Linear(32, 4).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = self.l1(y)
        return self.l2(_TanhFromInput.apply(z) if self.broken else torch.tanh(z))


def _tanh_ivp() -> tuple[torch.Tensor, torch.Tensor]:
    y0 = torch.randn(2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return y0, torch.linspace(0.0, 1.0, 4, dtype=torch.float64)


def test_default_reference_of_a_large_model_runs_no_backward():
    """A wrong custom backward on a 300-number model: the checkpointed reference would run
    that backward too; the default (directional differences) does not, and fails the check."""
    y0, t = _tanh_ivp()
    good = check_gradients(TanhMLP(), y0, t)
    assert good.reference == "directional" and good.ok, str(good)
    assert good.worst_error < 1e-6
    blind = check_gradients(TanhMLP(broken=True), y0, t, reference="checkpointed")
    assert blind.ok, str(blind)  # the same wrong backward on both sides: passed before
    report = check_gradients(TanhMLP(broken=True), y0, t)
    assert report.reference == "directional"
    assert not report.ok and report.worst_error > 0.5, str(report)
    assert min(report.errors.values()) > 100 * report.budget  # tanh' enters every tensor's
    text = str(report)
    assert REFERENCE_SCOPE["directional"] in text and "orthogonal" in text
    assert "4 random directions" in report.reference_settings


def test_directional_reference_reads_the_relative_error_of_a_scaled_gradient():
    """A gradient wrong by a factor 1.01 (a 1% error along itself) reads as 1e-2 along any
    directions; random directions are orthonormal and seeded."""
    vs = random_directions(10, 4, seed=3)
    assert vs.shape == (4, 10) and np.allclose(vs @ vs.T, np.eye(4))
    assert np.array_equal(vs, random_directions(10, 4, seed=3))
    assert random_directions(3, 4, seed=0).shape == (3, 3)
    y0, t = _tanh_ivp()

    projection = projection_loss(len(t), y0.shape)

    def scaled(ys: torch.Tensor) -> torch.Tensor:  # the loss, its gradient 1.01 times too big
        if ys.requires_grad:
            ys = ys.clone()
            ys.register_hook(lambda grad: 1.01 * grad)
        return projection(ys)

    report = check_gradients(TanhMLP(), y0, t, loss=scaled)
    assert report.reference == "directional"
    for error in report.errors.values():
        assert error == pytest.approx(1e-2, rel=1e-3)


def test_plain_callable_checks_y0_only():
    y0, t = _rotation_ivp()
    report = check_gradients(lambda tt, y: -y + torch.sin(tt), y0, t)
    assert report.ok, str(report)
    assert list(report.errors) == ["y0"]


def test_report_fields_and_json():
    y0, t = _rotation_ivp()
    report = check_gradients(DampedRotation(), y0, t, gradient="backsolve")
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is True and data["gradient"] == "backsolve"
    assert data["worst"] in ("y0", "a") and data["shapes"]["a"] == [2, 2]
    assert data["run"]["recon_error"] is not None
    assert data["run"]["saved_bytes"] > 0
    assert default_budget(1e-6, torch.float64) == pytest.approx(1e-4)
    assert default_budget(1e-9, torch.float32) == pytest.approx(1000 * 2.0**-23)


def test_projection_loss_is_seeded_and_dtype_agnostic():
    ys = torch.ones(3, 2, 2, dtype=torch.float64)
    first, second = projection_loss(3, (2, 2)), projection_loss(3, (2, 2))
    assert float(first(ys)) == float(second(ys))
    assert float(first(ys.float())) == pytest.approx(float(first(ys)), rel=1e-6)


def test_auto_reference_switches_on_size():
    y0, t = _rotation_ivp()
    assert check_gradients(DampedRotation(), y0, t).reference == "fd"
    big = torch.zeros(FD_MAX_ENTRIES, 2, dtype=torch.float64) + 0.1
    assert check_gradients(DampedRotation(), big, t).reference == "directional"


def test_stopped_run_is_a_breach_not_an_exception():
    y0, t = _rotation_ivp()
    report = check_gradients(DampedRotation(), y0, t, options={"max_num_steps": 2})
    assert not report.ok and report.stopped.startswith("MaxStepsExceededError")
    assert all(math.isinf(e) for e in report.errors.values())
    assert "the run stopped" in str(report)


@pytest.mark.parametrize("kwargs", [{"reference": "exact"}, {"method": "rk45"},
                                    {"gradient": "adjoint"}])
def test_invalid_arguments_raise(kwargs):
    y0, t = _rotation_ivp()
    with pytest.raises(odebench.InvalidInputError):
        check_gradients(DampedRotation(), y0, t, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float32_with_reference_on_the_same_device():
    problem = problems.get("mlp", width=16, dim=4, batch=4)
    func = problem.func().float().cuda()
    report = check_gradients(func, problem.y0.float().cuda(), problem.t_eval.float().cuda(),
                             gradient="interpolated")
    assert report.ok, str(report)
    assert report.device.startswith("cuda") and "on cuda" in report.reference_settings


USER_TEST = """
import torch
from odebench import problems


class Broken(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return -y

    @staticmethod
    def backward(ctx, grad):
        return grad


def make_ode(broken):
    problem = problems.get("decay")
    func = problem.func()
    field = (lambda t, y: Broken.apply(y)) if broken else func
    return field, problem.y0, problem.t_eval


def test_good_model(ode_gradcheck):
    func, y0, t = make_ode(broken=False)
    ode_gradcheck(func, y0, t, gradient="backsolve")


@pytest.mark.ode_gradcheck(rtol=1e-5)
def test_broken_model(ode_gradcheck):
    func, y0, t = make_ode(broken=True)
    ode_gradcheck(func, y0, t)


def test_unrelated():
    pass
"""


def test_pytest_plugin_fixture_and_marker(pytester: pytest.Pytester):
    pytester.makepyfile(test_user="import pytest\n" + USER_TEST)
    # The plugin comes from the pytest11 entry point; hypothesis' plugin is left out only
    # because it re-imports hypothesis in every in-process session (~9 s each).
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result = pytester.runpytest(*quiet)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: odebench gradient check FAILED (dopri5 / backprop): worst tensor "
        "'y0' has relative L2 error *",
        "*budget:    1.000e-03 relative L2 error per tensor*",
    ])
    others = pytester.runpytest(*quiet, "-m", "not ode_gradcheck")
    others.assert_outcomes(passed=1, deselected=2)
    markers = pytester.parseconfigure().getini("markers")
    assert any(line.startswith("ode_gradcheck(**settings):") for line in markers)


FACTORIES = """
import torch
from torch import nn


class Sign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, a):
        ctx.save_for_backward(y, a)
        return y * a

    @staticmethod
    def backward(ctx, grad):
        y, a = ctx.saved_tensors
        return grad * a, -(grad * y).sum(0)


class Field(nn.Module):
    def __init__(self, broken):
        super().__init__()
        self.broken = broken
        self.a = nn.Parameter(torch.tensor([-0.5, -1.0], dtype=torch.float64))

    def forward(self, t, y):
        return Sign.apply(y, self.a) if self.broken else y * self.a


def good():
    y0 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    return Field(False), y0, torch.linspace(0, 1, 4, dtype=torch.float64)


def broken():
    _, y0, t = good()
    return Field(True), y0, t, {"rtol": 1e-7, "gradients": ["backprop"]}


def crashing():
    # Sign has no setup_context: torch.func (the forward reference) cannot run it
    _, y0, t = good()
    return Field(True), y0, t, {"reference": "forward", "gradients": ["backprop"]}


class WrongTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - x**2)


class TanhField(nn.Module):
    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.l1, self.l2 = nn.Linear(4, 32).double(), nn.Linear(32, 4).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))

    def forward(self, t, y):
        return self.l2(WrongTanh.apply(self.l1(y)))


def big_broken():
    y0 = torch.randn(2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return TanhField(), y0, torch.linspace(0, 1, 4, dtype=torch.float64), {
        "gradients": ["backprop"]}
"""


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    (tmp_path / "user_models_for_odebench.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_models_for_odebench"
    sys.modules.pop("user_models_for_odebench", None)


def test_cli_verify_model_passes_and_fails(user_models, tmp_path, capsys):
    assert main(["verify", "--model", f"{user_models}:good"]) == 0
    good = capsys.readouterr().out
    assert "0 breach(es); gate PASSED" in good
    for gradient in odebench.GRADIENTS:
        assert gradient in good
    out = tmp_path / "gate.json"
    assert main(["verify", "--model", f"{user_models}:broken", "--json", str(out)]) == 1
    broken = capsys.readouterr().out
    assert "gate FAILED" in broken and "worst tensor 'a'" in broken
    data = json.loads(out.read_text())
    assert data["ok"] is False and [r["gradient"] for r in data["reports"]] == ["backprop"]
    assert data["reports"][0]["rtol"] == 1e-7


def test_cli_verify_model_exit_codes_breach_1_crash_2(user_models, capsys, caplog):
    """A wrong custom backward on a 300-number model breaks the budget (1); a gate that cannot
    run (a custom Function torch.func refuses, under reference="forward") exits 2 with one line."""
    assert main(["verify", "--model", f"{user_models}:big_broken"]) == 1
    out = capsys.readouterr().out
    assert "gate FAILED" in out and "reference directional" in out
    caplog.clear()
    assert main(["verify", "--model", f"{user_models}:crashing"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "crashed (no verdict)" in errors[0] and "setup_context" in errors[0]


def test_cli_verify_model_gradient_filter_and_bad_specs(user_models, capsys):
    assert main(["verify", "--model", f"{user_models}:good", "--gradient", "checkpointed"]) == 0
    assert "checkpointed" in capsys.readouterr().out
    assert main(["verify", "--model", f"{user_models}:missing"]) == 2
    assert main(["verify", "--model", "no_such_module_odebench:make"]) == 2
    assert main(["verify", "--model", "no-colon"]) == 2
    assert main(["verify", "--quick", "--model", f"{user_models}:good"]) == 2


def test_cli_verify_help_mentions_model(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "--model MODULE:FACTORY" in capsys.readouterr().out

"""odebench.backends: every backend measured by one harness, failures as status rows."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from odebench import backends, problems
from odebench.backends import BACKENDS, Measurement, RunSpec
from odebench.backends.torchdiffeq_backend import TorchdiffeqBackend
from odebench.backends.torchode_backend import TorchodeBackend, _check_status
from odebench.errors import InvalidInputError, NonFiniteError, StepSizeUnderflowError
from odebench.results import COLUMNS

RTOL, ATOL = 1e-8, 1e-10
#: (backend, method) of the accuracy checks: a 5(4) pair where the backend has one.
METHOD = {"odebench": "dopri5", "scipy": "RK45", "torchdiffeq": "dopri5", "torchode": "dopri5"}


@pytest.fixture(scope="module")
def lotka_volterra() -> problems.Problem:
    return problems.get("lotka_volterra")


def _backend(name: str) -> backends.Backend:
    backend = backends.get(name)
    ok, why = backend.available()
    if not ok:
        pytest.skip(why)
    return backend


def _run(name: str, problem: problems.Problem, gradient: str | None, **kw) -> Measurement:
    spec = RunSpec(problem=problem, method=kw.pop("method", METHOD[name]),
                   rtol=kw.pop("rtol", RTOL), atol=kw.pop("atol", ATOL), gradient=gradient,
                   repeats=kw.pop("repeats", 0), **kw)
    return _backend(name).solve(spec)


def _check_ok(m: Measurement, gradient: str | None) -> None:
    assert m.status == "ok", m.message
    assert m.sol_error < 1e-6
    assert len(m.sol_error_series) == 11 and m.sol_error_series[0] == 0.0
    assert m.scd > 5
    assert m.nfe_forward > 0 and m.steps > 0
    if gradient is not None:
        assert m.grad_error < 1e-5
        assert m.nfe_backward > 0
        assert m.saved_bytes > 0


def test_registry():
    assert BACKENDS == ("odebench", "scipy", "torchdiffeq", "torchode")
    assert [backends.get(name).name for name in BACKENDS] == list(BACKENDS)
    with pytest.raises(InvalidInputError, match="odebench, scipy, torchdiffeq, torchode"):
        backends.get("diffrax")


def test_measurement_fields_are_results_columns():
    assert {f.name for f in dataclasses.fields(Measurement)} <= set(COLUMNS)


def test_odebench_offers_every_method_and_gradient():
    import odebench

    backend = backends.get("odebench")
    assert backend.methods() == list(odebench.METHODS)
    assert set(odebench.GRADIENTS) <= set(backend.gradients())


@pytest.mark.parametrize("name", BACKENDS)
def test_forward_is_accurate(name, lotka_volterra):
    m = _run(name, lotka_volterra, None)
    _check_ok(m, None)
    assert m.nfe_backward is None and m.saved_bytes is None
    if "library_nfe" in m.extra:  # the library's own count agrees with CountingField's
        assert m.nfe_forward == m.extra["library_nfe"]


@pytest.mark.parametrize("name", ["odebench", "torchdiffeq", "torchode"])
def test_backprop_is_accurate(name, lotka_volterra):
    _check_ok(_run(name, lotka_volterra, "backprop"), "backprop")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "gradient"), [
    (name, gradient) for name in ("odebench", "torchdiffeq", "torchode")
    for gradient in backends.get(name).gradients() if gradient != "backprop"
])
def test_every_gradient_is_accurate(name, gradient, lotka_volterra):
    _check_ok(_run(name, lotka_volterra, gradient), gradient)


def test_odebench_backsolve_reports_reconstruction_and_counts(lotka_volterra):
    m = _run("odebench", lotka_volterra, "backsolve")
    _check_ok(m, "backsolve")
    assert 0 <= m.recon_error < 1e-6
    assert m.nfe_forward == m.extra["library_nfe"]
    assert m.nfe_backward == m.extra["library_nfe_backward"]


@pytest.mark.parametrize("name", BACKENDS)
def test_step_budget_gives_a_status_row(name, lotka_volterra):
    gradient = None if name == "scipy" else "backprop"
    m = _run(name, lotka_volterra, gradient, options={"max_num_steps": 3})
    assert m.status == "max_steps", m.message
    assert "max" in m.message.lower()
    assert m.nfe_forward > 0
    assert m.grad_error is None


def test_library_failures_map_to_statuses():
    status_of = TorchdiffeqBackend().status_of
    assert status_of(AssertionError("underflow in dt 1e-300")) == "step_underflow"
    assert status_of(AssertionError("max_num_steps exceeded (5>=5)")) == "max_steps"
    assert status_of(AssertionError("non-finite values in state `y`: nan")) == "nonfinite"
    assert status_of(AssertionError("something else")) == "error"
    assert status_of(NonFiniteError("nan")) == "nonfinite"
    with pytest.raises(StepSizeUnderflowError, match="status 2"):
        _check_status(torch.tensor([2]), {"n_steps": torch.tensor([7])})
    _check_status(torch.tensor([0]), {"n_steps": torch.tensor([7])})


def test_unsupported_runs_are_error_rows(lotka_volterra):
    m = _run("scipy", lotka_volterra, "backprop", method="RK45")
    assert (m.status, m.message.split(":")[0]) == ("error", "unsupported")
    m = _run("torchdiffeq", lotka_volterra, None, method="tsit5")
    assert m.status == "error" and "tsit5" in m.message
    m = _run("scipy", lotka_volterra, None, dtype="float32")
    assert m.status == "error" and "float64" in m.message


def test_missing_torchode_is_reported(lotka_volterra, monkeypatch):
    monkeypatch.setattr(TorchodeBackend, "available", lambda self: (False, "not installed"))
    m = backends.get("torchode").solve(RunSpec(problem=lotka_volterra, method="dopri5"))
    assert m.status == "error" and "not installed" in m.message


def test_float32_run(lotka_volterra):
    m = _run("odebench", lotka_volterra, "backprop", dtype="float32", rtol=1e-5, atol=1e-7)
    assert m.status == "ok", m.message
    assert m.sol_error < 1e-3 and m.grad_error < 1e-2
    assert m.saved_bytes > 0


def test_a_clamped_rtol_is_recorded(lotka_volterra):
    with pytest.warns(RuntimeWarning, match="below what torch.float32 resolves"):
        m = _run("odebench", lotka_volterra, None, dtype="float32", rtol=1e-8, atol=1e-8)
    assert m.status == "ok", m.message
    assert m.extra["rtol_effective"] == pytest.approx(100 * torch.finfo(torch.float32).eps)
    assert "rtol_effective" not in _run("odebench", lotka_volterra, None, rtol=1e-8).extra


def test_timing_repeats_and_budget(lotka_volterra):
    m = _run("odebench", problems.get("lotka_volterra", T=1.0), "backprop", repeats=2)
    assert m.wall_forward_s > 0 and m.wall_backward_s > 0
    assert m.n_repeats == 2
    assert m.wall_forward_iqr_s >= 0 and m.wall_backward_iqr_s >= 0
    m = _run("odebench", lotka_volterra, None, repeats=3, wall_budget_s=0.0)
    assert m.wall_forward_s > 0
    assert m.extra["timing"].startswith("instrumented run only")


def test_scheme_differences_are_noted(lotka_volterra):
    m = _run("torchdiffeq", lotka_volterra, None, method="dop853")
    assert m.status == "ok", m.message
    assert m.peer_method == "dopri8" and "8(7)" in m.extra["scheme_note"]


@pytest.mark.parametrize(("name", "method", "peer"), [
    ("odebench", "dop853", "dop853"), ("torchdiffeq", "dop853", "dopri8"),
    ("torchdiffeq", "dopri5", "dopri5"), ("scipy", "DOP853", "DOP853"),
    ("torchode", "tsit5", "tsit5")])
def test_rows_name_the_method_the_library_ran(name, method, peer):
    backend = _backend(name)
    spec = RunSpec(problem=problems.get("decay"), method=method, rtol=1e-6, atol=1e-6,
                   repeats=0)
    assert backend.peer_method(spec) == peer
    m = backend.solve(spec)
    assert m.status == "ok", m.message
    assert m.peer_method == peer and "library_method" not in m.extra


@pytest.mark.parametrize(("name", "gradient", "reanchor"), [
    ("odebench", "backprop", None), ("odebench", "backsolve", False),
    ("odebench", "backsolve_seminorm", False), ("odebench", "backsolve+reanchor", True),
    ("odebench", "interpolated", None), ("torchdiffeq", "backprop", None),
    ("torchdiffeq", "backsolve", True), ("torchdiffeq", "backsolve_seminorm", True),
    ("torchode", "backsolve", True)])
def test_rows_say_whether_the_adjoint_reanchors(name, gradient, reanchor):
    spec = RunSpec(problem=problems.get("decay"), method="dopri5", rtol=1e-6, atol=1e-6,
                   gradient=gradient, repeats=0)
    assert _backend(name).reanchors(spec) is reanchor


def test_backsolve_with_reanchor_runs_the_reanchoring_algorithm():
    problem = problems.get("lorenz", T=2.0, n_points=11)
    plain = _run("odebench", problem, "backsolve", rtol=1e-8, atol=1e-8)
    anchored = _run("odebench", problem, "backsolve+reanchor", rtol=1e-8, atol=1e-8)
    assert plain.status == anchored.status == "ok", (plain.message, anchored.message)
    assert anchored.reanchor is True and plain.reanchor is False
    assert anchored.extra["reanchor"] is True
    # re-anchoring at the 10 output times stops the backward drift of the state
    assert anchored.grad_error < plain.grad_error / 10


@pytest.mark.slow
def test_peak_rss_is_measured(lotka_volterra):
    problem = problems.get("lotka_volterra", T=1.0)
    m = _run("torchdiffeq", problem, "backsolve", measure_rss=True, problem_kwargs={"T": 1.0})
    assert m.status == "ok", m.message
    assert m.peak_rss_bytes > 50 * 2**20
    assert m.extra["rss_baseline_bytes"] <= m.peak_rss_bytes


@pytest.mark.slow
def test_peak_rss_refuses_a_problem_it_cannot_rebuild():
    problem = problems.get("lotka_volterra", T=1.0)
    m = _run("odebench", problem, None, measure_rss=True)  # no problem_kwargs: T is lost
    assert m.status == "ok" and m.peak_rss_bytes is None
    assert "problem_kwargs" in m.extra["rss_error"]

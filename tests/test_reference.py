"""The float64 references: closed forms, finite differences, published Test Set values, cache."""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
import torch

from odebench.errors import InvalidInputError
from odebench.problems import Problem, get
from odebench.problems.stiff import E5_PUBLISHED
from odebench.reference import ReferenceGradient, ReferenceSolution, gradient, solution
from odebench.reference import cache as disk
from odebench.reference import solve as solve_module
from odebench.reference.differentiate import choose_method
from odebench.reference.sensitivity import forward_sensitivities
from odebench.reference.settings import resolve


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Every test here computes afresh into its own cache directory, shared within the module."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("odebench-cache")
        mp.setenv(disk.ENV_VAR, str(path))
        yield path


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|."""
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def closed_form_gradient(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    y0 = problem.y0.clone().requires_grad_(True)
    p = problem.p.clone().requires_grad_(True)
    loss = problem.loss(problem.closed_form(problem.t_eval, y0, p))
    g_y0, g_p = torch.autograd.grad(loss, (y0, p))
    return g_y0.numpy(), g_p.numpy()


def perturbed(problem: Problem, index: int, step: float) -> Problem:
    """``problem`` with entry ``index`` of ``concat(y0, p)`` moved by ``step``."""
    y0, p = problem.y0.clone().reshape(-1), problem.p.clone()
    if index < y0.numel():
        y0[index] += step
    else:
        p[index - y0.numel()] += step
    return dataclasses.replace(problem, y0=y0.reshape(problem.y0.shape), p=p)


def loss_of(problem: Problem) -> float:
    ys = torch.from_numpy(solution(problem, cache=False).ys)
    return float(problem.loss(ys))


def central_difference(problem: Problem, index: int, rel_step: float = 2e-5) -> float:
    value = float(torch.cat([problem.y0.reshape(-1), problem.p])[index])
    h = rel_step * max(abs(value), 1.0)
    return (loss_of(perturbed(problem, index, h)) - loss_of(perturbed(problem, index, -h))) / (2 * h)


# --- solutions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem",
    [get("decay"), get("harmonic"), get("kepler"), get("stiff_linear", n=2)],
    ids=["decay", "harmonic", "kepler", "stiff_linear"],
)
def test_solution_matches_closed_form(problem):
    ref = solution(problem)
    assert isinstance(ref, ReferenceSolution)
    exact = problem.closed_form(problem.t_eval, problem.y0, problem.p).numpy()
    assert ref.ys.shape == exact.shape and ref.ys.dtype == np.float64
    np.testing.assert_array_equal(ref.ts, problem.t_eval.numpy())
    assert rel_err(ref.ys, exact) <= 1e-10
    assert ref.method == ("Radau" if problem.stiff else "DOP853")
    assert ref.rtol == (1e-12 if problem.stiff else 1e-13)
    assert ref.nfev > 0 and ref.wall_s > 0
    assert (ref.njev > 0) == problem.stiff


def test_solution_of_a_float32_problem_is_float64():
    problem = get("decay").to(torch.float32)
    ref = solution(problem, cache=False)
    assert ref.ys.dtype == np.float64
    exact = get("decay").closed_form(get("decay").t_eval, get("decay").y0, get("decay").p)
    assert rel_err(ref.ys, exact.numpy()) < 1e-6


def test_solution_keeps_batch_shape():
    problem = get("mlp", dim=3, batch=5, width=8, T=0.5, n_points=3)
    ref = solution(problem, cache=False)
    assert ref.ys.shape == (3, 5, 3)
    np.testing.assert_array_equal(ref.ys[0], problem.y0.numpy())


def test_settings_validation():
    with pytest.raises(InvalidInputError, match="method"):
        solution(get("decay"), method="Euler")
    with pytest.raises(InvalidInputError, match="rtol"):
        solution(get("decay"), rtol=-1.0)
    assert resolve(get("lorenz"), None, None, None).atol == pytest.approx(1e-14)
    assert resolve(get("e5"), None, None, None).atol == get("e5").atol


# --- gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem",
    [get("decay"), get("harmonic", T=3.0), get("kepler", T=math.pi)],
    ids=["decay", "harmonic", "kepler"],
)
def test_gradient_matches_closed_form(problem):
    ref = gradient(problem)
    assert isinstance(ref, ReferenceGradient)
    assert ref.method == "forward/DOP853"
    g_y0, g_p = closed_form_gradient(problem)
    assert ref.dy0.shape == problem.y0.shape and ref.dp.shape == problem.p.shape
    want = np.concatenate([g_y0.ravel(), g_p])
    got = np.concatenate([ref.dy0.ravel(), ref.dp])
    assert rel_err(got, want) <= 1e-9
    exact_loss = float(problem.loss(problem.closed_form(problem.t_eval, problem.y0, problem.p)))
    assert ref.loss == pytest.approx(exact_loss, rel=1e-11)


@pytest.mark.parametrize("problem", [get("lotka_volterra", T=3.0), get("lorenz", T=1.0)],
                         ids=["lotka_volterra", "lorenz"])
def test_gradient_matches_finite_differences(problem):
    ref = gradient(problem)
    got = np.concatenate([ref.dy0.ravel(), ref.dp])
    fd = np.array([central_difference(problem, i) for i in range(got.size)])
    assert np.max(np.abs(got - fd) / np.maximum(np.abs(fd), 1e-3 * np.max(np.abs(fd)))) <= 1e-6


def test_forward_and_adjoint_agree_on_a_small_problem():
    problem = get("vdp", T=1.0)

    def loss(ys):
        return (ys[..., 0] ** 2).sum() + (ys[-1] * problem.loss_weights()).sum()

    forward = gradient(problem, loss, method="forward")
    adjoint = gradient(problem, loss, method="adjoint")
    assert forward.method == "forward/DOP853" and adjoint.method == "adjoint/DOP853"
    assert forward.loss == adjoint.loss
    got = np.concatenate([adjoint.dy0, adjoint.dp])
    want = np.concatenate([forward.dy0, forward.dp])
    assert rel_err(got, want) <= 1e-8


def test_adjoint_is_chosen_for_the_mlp_and_matches_a_directional_difference():
    problem = get("mlp", width=16, dim=4, batch=16, T=0.5, n_points=6)
    n, m = problem.y0.numel(), problem.p.numel()
    assert choose_method(n, m) == "adjoint"
    ref = gradient(problem)
    assert ref.method == "adjoint/DOP853"
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(n, generator=gen, dtype=torch.float64).reshape(problem.y0.shape)
    v = torch.randn(m, generator=gen, dtype=torch.float64)
    h = 1e-4

    def shifted(s):
        return loss_of(dataclasses.replace(problem, y0=problem.y0 + s * u, p=problem.p + s * v))

    fd = (shifted(h) - shifted(-h)) / (2 * h)
    analytic = float((ref.dy0 * u.numpy()).sum() + (ref.dp * v.numpy()).sum())
    assert analytic == pytest.approx(fd, rel=1e-6)


def test_choose_method_threshold():
    assert choose_method(3, 3) == "forward"
    assert choose_method(2, 1218) == "forward"
    assert choose_method(64, 1348) == "adjoint"


def test_gradient_argument_errors():
    with pytest.raises(InvalidInputError, match="method"):
        gradient(get("decay"), method="backsolve")
    with pytest.raises(InvalidInputError, match="scalar"):
        gradient(get("decay"), lambda ys: ys.sum(0))


def test_gradient_of_a_loss_that_ignores_the_trajectory_is_zero():
    ref = gradient(get("decay"), lambda ys: torch.tensor(2.0, dtype=torch.float64), cache=False)
    assert ref.loss == 2.0
    assert not np.any(ref.dy0) and not np.any(ref.dp)


# --- published stiff values ---------------------------------------------------------------


def published_rel_err(name: str, T: float | None = None, floor: float = 0.0) -> np.ndarray:
    """Componentwise |ref - published| / max(|published|, floor) at the final time."""
    problem = get(name) if T is None else get(name, T=T)
    ref = solution(problem)
    assert ref.method == "Radau" and ref.rtol == 1e-12
    published = problem.reference.y.numpy()
    return np.abs(ref.ys[-1] - published) / np.maximum(np.abs(published), floor)


def test_hires_matches_the_test_set():
    assert np.max(published_rel_err("hires")) <= 1e-11


def test_rober_matches_the_test_set():
    # atol 1e-14 against y1 ~ 2e-8, y2 ~ 8e-14: those two carry about 1e-8 relative error.
    err = published_rel_err("rober")
    assert err[2] <= 1e-13
    assert np.max(err) <= 1e-7


def test_rober_matches_the_sundials_table_and_conserves_mass():
    # cvRoberts_dns output (4-5 significant digits), t = 0.4 ... 4e10.
    table = np.array([
        [9.8517e-01, 3.3864e-05, 1.4794e-02], [9.0553e-01, 2.2406e-05, 9.4452e-02],
        [7.1579e-01, 9.1838e-06, 2.8420e-01], [4.5044e-01, 3.2218e-06, 5.4956e-01],
        [1.8320e-01, 8.9444e-07, 8.1680e-01], [3.8992e-02, 1.6221e-07, 9.6101e-01],
        [4.9369e-03, 1.9842e-08, 9.9506e-01], [5.1674e-04, 2.0684e-09, 9.9948e-01],
        [5.2009e-05, 2.0805e-10, 9.9995e-01], [5.2012e-06, 2.0805e-11, 9.9999e-01],
        [5.1850e-07, 2.0740e-12, 1.0000e+00], [4.8641e-08, 1.9456e-13, 1.0000e+00],
    ])
    ref = solution(get("rober"))
    err = np.abs(ref.ys[1:-1] - table) / table
    # CVODE ran at rtol 1e-4: y3 everywhere and y1, y2 up to t = 4e7 are good to ~5e-4;
    # its small y1, y2 at later times drift (7% by 4e10).
    assert np.max(err[:, 2]) <= 5e-4
    assert np.max(err[:9, :2]) <= 1e-3
    assert np.max(np.abs(ref.ys.sum(axis=1) - 1.0)) <= 1e-13


def test_rober_sensitivities_match_cvodes_at_t_04():
    problem = get("rober", T=0.4)
    # The anchor has 4-5 digits, so a Radau rtol of 1e-6 is plenty (and far cheaper).
    _, sens, _ = forward_sensitivities(problem, resolve(problem, None, 1e-6, None))
    dy_dp = sens[-1, 3:]  # [parameter, component]
    cvodes = np.array([
        [-3.5595e-01, 3.9025e-04, 3.5556e-01],
        [9.5426e-08, -2.1310e-10, -9.5213e-08],
        [-1.5832e-11, -5.2900e-13, 1.6361e-11],
    ])
    assert np.max(np.abs(dy_dp - cvodes) / np.abs(cvodes)) <= 1e-3
    np.testing.assert_allclose(sens[0, :3], np.eye(3))


@pytest.mark.slow
def test_vdpol_matches_the_test_set():
    assert np.max(published_rel_err("vdpol")) <= 1e-12


@pytest.mark.slow
def test_orego_matches_the_test_set():
    assert np.max(published_rel_err("orego")) <= 1e-12


def test_pollu_matches_the_test_set():
    # y16 ~ 4e-18 is below the problem's atol (1e-16), which serves as the absolute floor.
    assert np.max(published_rel_err("pollu", floor=get("pollu").atol)) <= 1e-10


@pytest.mark.slow
def test_e5_matches_hairer_up_to_1e9():
    problem = get("e5", T=1e9)
    ref = solution(problem)
    assert "Hairer" in problem.reference.source
    # Every output time 10, 1e3, ..., 1e9 is in Hairer's table; y4(1e9) ~ 4.5e-26.
    for i, t in enumerate(problem.t_eval.tolist()[1:], start=1):
        published = np.array(E5_PUBLISHED[t][0])
        assert np.max(np.abs(ref.ys[i] - published) / np.abs(published)) <= 1e-8
    assert np.max(np.abs(ref.ys[:, 1] - ref.ys[:, 2] - ref.ys[:, 3])) <= 1e-24


# --- cache --------------------------------------------------------------------------------


def test_cache_hit_returns_the_stored_result(tmp_path, monkeypatch):
    monkeypatch.setenv(disk.ENV_VAR, str(tmp_path))
    problem = get("lorenz", T=0.3)
    first = solution(problem)
    assert len(list(tmp_path.glob("solution-lorenz-*.npz"))) == 1

    def no_recompute(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(solve_module, "run_forward", no_recompute)
    second = solution(problem)
    np.testing.assert_array_equal(first.ys, second.ys)
    assert (first.nfev, first.wall_s) == (second.nfev, second.wall_s)
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_key_depends_on_parameters_and_settings():
    problem = get("lorenz", T=0.3)
    other = dataclasses.replace(problem, p=problem.p * 1.01)
    key = disk.make_key("solution", problem, {"rtol": 1e-13})
    assert key != disk.make_key("solution", other, {"rtol": 1e-13})
    assert key != disk.make_key("solution", problem, {"rtol": 1e-12})
    changed_rhs = dataclasses.replace(problem, rhs=lambda t, y, p: 2.0 * problem.rhs(t, y, p))
    assert key != disk.make_key("solution", changed_rhs, {"rtol": 1e-13})


def test_corrupted_cache_file_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv(disk.ENV_VAR, str(tmp_path))
    problem = get("decay", T=0.5)
    good = solution(problem)
    (path,) = tmp_path.glob("solution-decay-*.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    again = solution(problem)
    np.testing.assert_array_equal(good.ys, again.ys)
    path.write_bytes(b"not a zip file")
    np.testing.assert_array_equal(good.ys, solution(problem).ys)
    assert disk.load("solution", problem.name, "0" * 64) is None


def test_tampered_cache_arrays_are_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv(disk.ENV_VAR, str(tmp_path))
    problem = get("decay", T=0.25)
    good = solution(problem)
    (path,) = tmp_path.glob("solution-decay-*.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["ys"] = arrays["ys"] + 1.0
    np.savez(path, **arrays)
    np.testing.assert_array_equal(good.ys, solution(problem).ys)


def test_gradient_is_cached_per_loss(tmp_path, monkeypatch):
    monkeypatch.setenv(disk.ENV_VAR, str(tmp_path))
    problem = get("decay", T=0.5)
    first = gradient(problem)
    again = gradient(problem)
    np.testing.assert_array_equal(first.dy0, again.dy0)
    assert first.wall_s == again.wall_s
    doubled = gradient(problem, lambda ys: 2.0 * problem.loss(ys))
    np.testing.assert_allclose(doubled.dp, 2.0 * first.dp, rtol=1e-14)
    assert len(list(tmp_path.glob("gradient-decay-*.npz"))) == 2


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(disk.ENV_VAR, str(tmp_path / "elsewhere"))
    assert disk.cache_dir() == tmp_path / "elsewhere"
    solution(get("decay", T=0.1, n_points=2))
    assert len(os.listdir(tmp_path / "elsewhere")) == 1
    monkeypatch.delenv(disk.ENV_VAR)
    assert disk.cache_dir().parts[-2:] == (".cache", "odebench")


def test_unwritable_cache_only_warns(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(disk.ENV_VAR, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cache not written"):
        ref = solution(get("decay", T=0.1, n_points=2))
    assert ref.ys.shape == (2, 4)

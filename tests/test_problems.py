"""The problem registry: names, lookup errors, shapes, conversions, invariants, transcriptions."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacrev, vmap

from odebench.errors import InvalidInputError
from odebench.problems import Problem, get, names, register, registry
from odebench.problems.stiff import stiff_linear_basis

NONSTIFF = {"decay", "harmonic", "lotka_volterra", "vdp", "kepler", "lorenz"}
NEURAL = {"mlp", "mlp_small", "mlp_large"}
STIFF = {"rober", "hires", "vdpol", "orego", "pollu", "e5", "stiff_linear", "brusselator_2d"}


def test_names_partition_into_stiff_and_nonstiff():
    stiff, nonstiff = set(names(stiff=True)), set(names(stiff=False))
    assert stiff == STIFF
    assert nonstiff == NONSTIFF | NEURAL
    assert stiff.isdisjoint(nonstiff)
    assert set(names()) == stiff | nonstiff
    assert names() == sorted(names())


def test_unknown_name_lists_valid_names():
    with pytest.raises(InvalidInputError) as info:
        get("no_such_problem")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "no_such_problem" in message
    for name in names():
        assert name in message


def test_unknown_keyword_is_invalid_input():
    with pytest.raises(InvalidInputError, match="lorenz"):
        get("lorenz", not_an_argument=1)


def test_register_adds_a_problem(monkeypatch):
    # Work on copies so the additions do not leak into other tests.
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_STIFF", dict(registry._STIFF))

    def factory(T: float = 1.0) -> Problem:
        problem = get("decay", T=T)
        problem.name = "custom_decay"
        return problem

    register("custom_decay", factory)
    assert "custom_decay" in names(stiff=False)
    assert get("custom_decay", T=2.0).t_eval[-1] == 2.0
    with pytest.raises(InvalidInputError):
        register("", factory)
    register("not_a_problem", lambda: 42)
    with pytest.raises(InvalidInputError, match="not Problem"):
        get("not_a_problem")


@pytest.mark.parametrize("name", sorted(NONSTIFF | NEURAL | STIFF))
def test_problem_record_is_consistent(name):
    problem = get(name)
    assert problem.name == name
    assert problem.y0.dtype == torch.float64 and problem.p.dtype == torch.float64
    assert problem.p.ndim == 1 and problem.p.numel() >= 1
    t = problem.t_eval
    assert t.ndim == 1 and t.numel() >= 2 and bool(torch.all(t[1:] > t[:-1]))
    assert problem.description and problem.atol > 0
    dy = problem.rhs(t[0], problem.y0, problem.p)
    assert dy.shape == problem.y0.shape and dy.dtype == torch.float64
    assert bool(torch.all(torch.isfinite(dy)))
    if problem.reference is not None:
        assert problem.reference.y.shape == problem.y0.shape
        assert problem.reference.t == pytest.approx(float(t[-1]))
        assert problem.reference.source


@pytest.mark.parametrize("name", sorted(NONSTIFF | STIFF | {"mlp_small"}))
def test_rhs_works_under_torch_func(name):
    problem = get(name)
    t, y, p = problem.t_eval[0], problem.y0 + 0.01, problem.p
    j_y = jacrev(lambda yy: problem.rhs(t, yy, p))(y)
    j_p = jacrev(lambda pp: problem.rhs(t, y, pp))(p)
    assert j_y.shape == (*y.shape, *y.shape)
    assert j_p.shape == (*y.shape, *p.shape)
    batch = torch.stack([y, 1.01 * y])
    out = vmap(lambda yy: problem.rhs(t, yy, p))(batch)
    assert torch.allclose(out[1], problem.rhs(t, batch[1], p), rtol=1e-13, atol=0.0)


def test_stiff_problems_have_published_references():
    for name in ("rober", "hires", "vdpol", "orego", "pollu", "e5"):
        problem = get(name)
        assert problem.stiff
        assert problem.reference is not None and "Test Set" in problem.reference.source


def test_to_float32_converts_a_copy():
    problem = get("lorenz")
    low = problem.to(torch.float32)
    assert low.y0.dtype == torch.float32 and low.p.dtype == torch.float32
    assert low.t_eval.dtype == torch.float32
    assert problem.y0.dtype == torch.float64
    dy = low.rhs(low.t_eval[0], low.y0, low.p)
    assert dy.dtype == torch.float32
    assert torch.allclose(dy.double(), problem.rhs(problem.t_eval[0], problem.y0, problem.p),
                          rtol=1e-6)
    assert get("rober").to(torch.float32).reference.y.dtype == torch.float64


def test_func_exposes_p_as_a_parameter_and_gradients_flow():
    problem = get("lotka_volterra")
    func = problem.func()
    params = list(func.parameters())
    assert len(params) == 1 and torch.equal(params[0].detach(), problem.p)
    assert params[0].data_ptr() != problem.p.data_ptr()
    out = func(problem.t_eval[0], problem.y0)
    assert torch.equal(out, problem.rhs(problem.t_eval[0], problem.y0, problem.p))
    out.sum().backward()
    assert params[0].grad is not None and bool(torch.any(params[0].grad != 0))


def test_loss_weights_are_deterministic_and_shaped():
    problem = get("mlp", batch=3, dim=5)
    w = problem.loss_weights()
    assert w.shape == (3, 5)
    assert torch.equal(w, get("mlp", batch=3, dim=5).loss_weights())
    assert bool(torch.all((w.abs() >= 0.5) & (w.abs() <= 1.5)))
    assert bool(torch.any(w < 0)) and bool(torch.any(w > 0))
    assert not torch.equal(get("hires").loss_weights()[:3], get("rober").loss_weights())


def test_default_loss_is_weighted_sum():
    problem = get("hires")
    ys = torch.rand(problem.t_eval.numel(), 8, dtype=torch.float64)
    assert torch.isclose(problem.loss(ys), (ys * problem.loss_weights()).sum())


def test_mlp_is_configurable_and_order_one():
    problem = get("mlp", width=16, depth=3, dim=6, batch=7, seed=3, T=2.0)
    assert problem.y0.shape == (7, 6)
    n_params = 6 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 6 + 6
    assert problem.p.numel() == n_params
    assert float(problem.t_eval[-1]) == 2.0
    dy = problem.rhs(problem.t_eval[0], problem.y0, problem.p)
    assert 0.01 < float(dy.abs().mean()) < 3.0
    j = jacrev(lambda y: problem.rhs(problem.t_eval[0], y, problem.p))(problem.y0[0])
    assert float(torch.linalg.matrix_norm(j, ord=2)) < 5.0
    assert not torch.equal(problem.p, get("mlp", width=16, depth=3, dim=6, batch=7, seed=4).p)
    with pytest.raises(InvalidInputError, match="width"):
        get("mlp", width=0)


def test_mlp_variants():
    small, large = get("mlp_small"), get("mlp_large")
    assert small.y0.shape == (1, 2) and large.y0.shape == (256, 32)
    assert small.p.numel() == 2 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2
    assert large.p.numel() == 32 * 64 + 64 + 64 * 64 + 64 + 64 * 32 + 32


def test_rober_conserves_mass_and_matches_the_test_set_jacobian():
    problem = get("rober")
    y = torch.tensor([0.7, 2e-5, 0.3 - 2e-5], dtype=torch.float64)
    dy = problem.rhs(problem.t_eval[0], y, problem.p)
    assert abs(float(dy.sum())) < 1e-15 * float(dy.abs().max())
    y1, y2, y3 = y.tolist()
    expected = torch.tensor(
        [[-0.04, 1e4 * y3, 1e4 * y2], [0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2], [0.0, 6e7 * y2, 0.0]],
        dtype=torch.float64,
    )
    j = jacrev(lambda yy: problem.rhs(problem.t_eval[0], yy, problem.p))(y)
    assert torch.allclose(j, expected, rtol=1e-14, atol=0.0)
    assert "SciMLBenchmarks" in problem.description
    assert problem.p.tolist() == [0.04, 1e4, 3e7]
    assert problem.t_eval[0] == 0.0 and problem.t_eval[1] == 0.4 and problem.t_eval[-1] == 1e11


def test_hires_conserves_y7_plus_y8_and_matches_the_literals():
    problem = get("hires")
    y = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f = problem.rhs(problem.t_eval[0], y, problem.p)
    assert abs(float(f[6] + f[7])) == 0.0
    y1, y2, y3, y4, y5, y6, y7, y8 = y.tolist()
    # feval of the Test Set hires.f with its literal constants.
    literal = [
        -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
        1.71 * y1 - 8.75 * y2,
        -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
        8.32 * y2 + 1.71 * y3 - 1.12 * y4,
        -1.745 * y5 + 0.43 * (y6 + y7),
        -280 * y6 * y8 + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
        280 * y6 * y8 - 1.81 * y7,
        -(280 * y6 * y8 - 1.81 * y7),
    ]
    assert torch.allclose(f, torch.tensor(literal, dtype=torch.float64), rtol=1e-14, atol=1e-16)
    assert float(problem.y0[6] + problem.y0[7]) == 0.0057


def test_pollu_table_matches_the_reaction_list():
    """The parsed Fortran tables against an independent transcription of Verwer's reactions."""
    problem = get("pollu")
    gen = torch.Generator().manual_seed(2)
    y = torch.rand(20, dtype=torch.float64, generator=gen)
    Y = [None] + y.tolist()
    k = [None] + problem.p.tolist()
    pairs = [(1,), (2, 4), (5, 2), (7,), (7,), (7, 6), (9,), (9, 6), (11, 2), (11, 1), (13,),
             (10, 2), (14,), (1, 6), (3,), (4,), (4,), (16,), (16,), (17, 6), (19,), (19,),
             (1, 4), (19, 1), (20,)]
    r = [None] + [k[j] * math.prod(Y[i] for i in pair) for j, pair in enumerate(pairs, start=1)]
    expected = [
        -r[1] - r[10] - r[14] - r[23] - r[24] + r[2] + r[3] + r[9] + r[11] + r[12] + r[22] + r[25],
        -r[2] - r[3] - r[9] - r[12] + r[1] + r[21],
        -r[15] + r[1] + r[17] + r[19] + r[22],
        -r[2] - r[16] - r[17] - r[23] + r[15],
        -r[3] + 2 * r[4] + r[6] + r[7] + r[13] + r[20],
        -r[6] - r[8] - r[14] - r[20] + r[3] + 2 * r[18],
        -r[4] - r[5] - r[6] + r[13],
        r[4] + r[5] + r[6] + r[7],
        -r[7] - r[8],
        -r[12] + r[7] + r[9],
        -r[9] - r[10] + r[8] + r[11],
        r[9],
        -r[11] + r[10],
        -r[13] + r[12],
        r[14],
        -r[18] - r[19] + r[16],
        -r[20],
        r[20],
        -r[21] - r[22] - r[24] + r[23] + r[25],
        -r[25] + r[24],
    ]
    f = problem.rhs(problem.t_eval[0], y, problem.p)
    scale = max(abs(v) for v in expected)
    assert torch.allclose(f, torch.tensor(expected, dtype=torch.float64), rtol=1e-12,
                          atol=1e-14 * scale)
    assert problem.p.numel() == 25 and problem.y0.numel() == 20


def test_e5_preserves_y2_minus_y3_minus_y4():
    problem = get("e5")
    y = torch.tensor([1.7e-3, 3e-12, 1e-12, 2e-12], dtype=torch.float64)
    f = problem.rhs(problem.t_eval[0], y, problem.p)
    assert abs(float(f[1] - f[2] - f[3])) <= 1e-15 * float(f.abs().max())
    assert "ill-conditioned" in problem.description
    assert problem.atol <= 1e-23


def test_orego_and_vdpol_grids():
    orego = get("orego")
    assert orego.t_eval.tolist() == [30.0 * k for k in range(13)]
    vdpol = get("vdpol")
    assert vdpol.p.tolist() == [1e-6] and float(vdpol.t_eval[-1]) == 2.0


def test_other_final_times_take_other_published_tables():
    assert "Hairer" in get("hires", T=421.8122).reference.source
    assert "Hairer" in get("orego", T=90.0).reference.source
    assert "Hairer" in get("e5", T=1e9).reference.source
    assert get("rober", T=1e5).reference is None
    assert get("e5", T=1e9).t_eval.tolist() == [0.0, 10.0, 1e3, 1e5, 1e7, 1e9]
    with pytest.raises(InvalidInputError, match="T"):
        get("rober", T=-1.0)


def test_stiff_linear_spectrum_and_closed_form():
    problem = get("stiff_linear")
    q = stiff_linear_basis(problem.y0.numel())
    assert torch.allclose(q @ q.T, torch.eye(q.shape[0], dtype=torch.float64), atol=1e-14)
    a = jacrev(lambda y: problem.rhs(problem.t_eval[0], y, problem.p))(problem.y0)
    eig = torch.linalg.eigvalsh(a)
    assert float(eig.max()) == pytest.approx(-1.0, rel=1e-9)
    assert float(eig.min()) == pytest.approx(-1e6, rel=1e-12)
    ys = problem.closed_form(problem.t_eval, problem.y0, problem.p)
    expm = torch.linalg.matrix_exp(float(problem.t_eval[3]) * a)
    # expm by scaling and squaring is only accurate to about eps * |t A| = 1e-10 here.
    assert torch.allclose(ys[3], expm @ problem.y0, rtol=0.0, atol=1e-9)


@pytest.mark.parametrize("name", ["decay", "harmonic", "kepler", "stiff_linear"])
def test_closed_forms_satisfy_the_ode(name):
    problem = get(name)
    t = problem.t_eval
    ys = problem.closed_form(t, problem.y0, problem.p)
    assert ys.shape == (t.numel(), *problem.y0.shape)
    assert torch.allclose(ys[0], problem.y0, rtol=1e-14, atol=1e-15)
    dydt = jacrev(lambda tt: problem.closed_form(tt, problem.y0, problem.p))(t)
    dydt = torch.stack([dydt[i, ..., i] for i in range(1, t.numel())])
    f = torch.stack([problem.rhs(t[i], ys[i], problem.p) for i in range(1, t.numel())])
    # Evaluating rhs loses about eps * |p| * |y| (stiff_linear: |p| = 1e6).
    scale = float(problem.p.abs().max()) * float(ys.abs().max())
    assert torch.allclose(dydt, f, rtol=1e-10, atol=1e-14 * scale)


def test_kepler_closed_form_is_periodic_and_conserves_energy():
    problem = get("kepler")
    ys = problem.closed_form(problem.t_eval, problem.y0, problem.p)
    assert torch.allclose(ys[-1], problem.y0, atol=1e-13)
    q, v = ys[:, :2], ys[:, 2:]
    energy = 0.5 * (v * v).sum(-1) - 1.0 / torch.linalg.vector_norm(q, dim=-1)
    assert torch.allclose(energy, torch.full_like(energy, -0.5), atol=1e-13)
    assert problem.y0[0] == 0.5

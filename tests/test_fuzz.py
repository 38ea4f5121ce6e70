"""Fuzzing what a person can pass (hypothesis): every outcome is a valid solution or a typed
odebench error (shapes, dtypes, devices, tolerances, options, time grids, vector fields), never
a bare exception or a hang; and solver properties on random stable linear systems (against
scipy.linalg.expm) and random batch shapes.

Deterministic (``derandomize=True``, no example database) and small: the whole file runs in
well under a minute on one core.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import odebench
from odebench import OdeBenchError
from odebench.measure import pinned_threads
from odebench.solvers.options import SolverOptions

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
OPTION_KEYS = [f.name for f in SolverOptions.__dataclass_fields__.values()] + ["stepsize"]
# Anything a person might type as a value.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**6), st.text(max_size=4),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([1e-300, 1e-30, 0.05, 0.5, "dopri5", "rk45", [0.1], (1, 2)]),
)
TOLERANCES_DRAWN = st.floats(1e-14, 1e-2)
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
DTYPES = st.sampled_from([torch.float64, torch.float32, torch.float16, torch.int64,
                          torch.complex64, torch.bool])


@pytest.fixture(autouse=True)
def _one_thread():
    with pinned_threads(1):
        yield


def _decay(t, y):
    return -0.5 * y


@st.composite
def _wild_times(draw) -> torch.Tensor:
    values = draw(st.lists(st.floats(-3, 3, allow_nan=False, width=64), min_size=0, max_size=4))
    kind = draw(st.sampled_from(["increasing", "decreasing", "as drawn", "nan"]))
    if kind == "increasing":
        values = sorted(values)
    elif kind == "decreasing":
        values = sorted(values, reverse=True)
    elif kind == "nan" and values:
        values[-1] = math.nan
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.int64]))
    t = torch.tensor(values, dtype=torch.float64).to(dtype)
    return t.reshape(2, -1) if draw(st.booleans()) and len(values) == 4 else t


@st.composite
def _times(draw) -> torch.Tensor:
    """Strictly monotone output times, either direction, float32 or float64."""
    values = sorted(draw(st.sets(st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 2)),
                                 min_size=1, max_size=4)), reverse=draw(st.booleans()))
    return torch.tensor(values, dtype=draw(st.sampled_from([torch.float64, torch.float32])),
                        device=draw(st.sampled_from(DEVICES)))


@st.composite
def _state(draw, wild: bool) -> torch.Tensor:
    shape = tuple(draw(st.lists(st.integers(0 if wild else 1, 3), max_size=3)))
    dtype = draw(DTYPES if wild else st.sampled_from([torch.float64, torch.float32]))
    y0 = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y0 = y0.to(dtype=dtype, device=draw(st.sampled_from(DEVICES)))
    if wild and y0.numel() and y0.is_floating_point():
        y0.view(-1)[0] = draw(st.sampled_from([math.nan, math.inf, 1e30, 0.0]))
    return y0


VALID_OPTIONS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "step_size": st.floats(1e-2, 0.5), "checkpoint_every": st.integers(1, 4),
    "seminorm": st.booleans(), "reanchor": st.booleans(), "adjoint_rtol": TOLERANCES_DRAWN,
    "first_step": st.floats(1e-6, 0.5), "max_step": st.floats(1e-2, 10.0)}))
WILD_OPTIONS = st.one_of(st.just([]), st.dictionaries(st.sampled_from(OPTION_KEYS), VALUES,
                                                      max_size=3))
FIELDS = {
    "y0": (_state(False), _state(True)),
    "t": (_times(), _wild_times()),
    "method": (st.sampled_from(odebench.METHODS), st.sampled_from(["rk45", "", "DOPRI5"])),
    "rtol": (TOLERANCES_DRAWN, VALUES),
    "atol": (TOLERANCES_DRAWN, VALUES),
    "gradient": (st.sampled_from(list(odebench.GRADIENTS)), st.sampled_from(["adjoint", None])),
    "options": (VALID_OPTIONS, WILD_OPTIONS),
}


def _later(n: int, wrong):
    """A field that is right for its first ``n`` evaluations and then returns ``wrong(y)``."""
    calls = []

    def func(t, y):
        calls.append(None)
        return _decay(t, y) if len(calls) <= n else wrong(y)

    return func


def _writes_into_y(t, y):
    y.mul_(1.0)
    return -y


CAPTURED = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
WILD_FUNCS = st.sampled_from([
    lambda: _later(3, lambda y: y.sum()), lambda: _later(3, lambda y: y.to(torch.float16)),
    lambda: _later(3, lambda y: (y,)), lambda: _later(3, lambda y: y * math.nan),
    lambda: _writes_into_y, lambda: (lambda t, y: -y * CAPTURED.to(y.dtype)),
    lambda: _later(0, lambda y: y[..., :1]),
]).map(lambda make: make())
FIELDS["func"] = (st.just(_decay), WILD_FUNCS)
FIELDS["params"] = (st.sampled_from([None, [CAPTURED]]),
                    st.sampled_from([CAPTURED, 3, [1.0], "w"]))


@st.composite
def _calls(draw) -> dict:
    """A valid call with none, one or two of its arguments replaced by wild ones."""
    wild = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=2))
    call = {name: draw(strategies[name in wild]) for name, strategies in FIELDS.items()}
    options = call["options"]
    if isinstance(options, dict):  # no hang: the step budget is bounded (also when fuzzed)
        budget = options.get("max_num_steps")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget > 2000:
            options["max_num_steps"] = 2000
        options.setdefault("max_num_steps_backward", 2000)
        if isinstance(options.get("step_size"), float) and 0 < options["step_size"] < 1e-2:
            options["step_size"] = 1e-2
    call["grad"] = draw(st.booleans())
    return call


@FUZZ
@given(_calls())
def test_every_outcome_is_a_solution_or_a_typed_error(call):
    call = dict(call)
    grad = call.pop("grad")
    y0 = call.pop("y0")
    if grad and y0.is_floating_point():
        y0 = y0.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rtol clamped below 100 eps
        try:
            sol = odebench.solve(call.pop("func"), y0, **call)
            if sol.ys.requires_grad:
                sol.ys.sum().backward()
        except OdeBenchError as err:
            event(f"typed error: {type(err).__name__}")
            return
    event("solution")
    assert sol.ys.shape == (len(call["t"]), *y0.shape)
    assert sol.ys.dtype == y0.dtype and sol.ys.device == y0.device


def _stable_matrix(n: int, seed: int) -> np.ndarray:
    """A random real matrix with every eigenvalue's real part <= -0.1: skew part plus
    ``-(B B^T + 0.1 I)``, entries O(1)."""
    gen = np.random.default_rng(seed)
    s = gen.uniform(-1, 1, (n, n))
    b = gen.uniform(-0.7, 0.7, (n, n))
    return (s - s.T) / 2 - b @ b.T - 0.1 * np.eye(n)


TOLERANCES = {torch.float64: (1e-9, 1e-11, 1e-5), torch.float32: (1e-4, 1e-6, 5e-3)}


@PROPERTY
@given(n=st.integers(1, 4), seed=st.integers(0, 10**6), span=st.floats(0.1, 2.0),
       points=st.integers(2, 4), backwards=st.booleans(),
       dtype=st.sampled_from([torch.float64, torch.float32]),
       method=st.sampled_from([*odebench.solvers.ADAPTIVE_METHODS, "rodas5p"]))
def test_linear_systems_match_the_matrix_exponential(n, seed, span, points, backwards, dtype,
                                                     method):
    a = _stable_matrix(n, seed)
    y0 = np.random.default_rng(seed + 1).uniform(-1, 1, n)
    t = np.linspace(0.0, -span if backwards else span, points) + 0.3
    rtol, atol, allowed = TOLERANCES[dtype]
    a_t = torch.as_tensor(a, dtype=dtype)
    ys = odebench.odeint(lambda tt, y: a_t @ y, torch.as_tensor(y0, dtype=dtype),
                         torch.as_tensor(t, dtype=dtype), method=method, rtol=rtol, atol=atol)
    exact = np.stack([scipy.linalg.expm(a * (ti - t[0])) @ y0 for ti in t])
    scale = max(1.0, float(np.abs(exact).max()))
    assert np.abs(ys.double().numpy() - exact).max() <= allowed * scale


@PROPERTY
@given(batch=st.lists(st.integers(1, 3), min_size=1, max_size=2), n=st.integers(1, 3),
       seed=st.integers(0, 10**6), fixed=st.booleans())
def test_a_batch_gives_each_sample_its_own_result(batch, n, seed, fixed):
    """Samples that do not interact: the batched solve equals solving each sample alone (to
    roundoff with fixed steps; within the tolerance with adaptive ones, whose steps the batch
    shares)."""
    a = torch.as_tensor(_stable_matrix(n, seed))
    y0 = torch.as_tensor(np.random.default_rng(seed + 2).uniform(-1, 1, (*batch, n)))
    t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)

    def field(tt, y):
        return y @ a.T

    kwargs = ({"method": "rk4", "options": {"step_size": 0.05}} if fixed else
              {"method": "dopri5", "rtol": 1e-9, "atol": 1e-11})
    together = odebench.odeint(field, y0, t, **kwargs)
    assert together.shape == (3, *batch, n)
    for index in np.ndindex(*batch):
        alone = odebench.odeint(field, y0[index], t, **kwargs)
        assert torch.allclose(together[(slice(None), *index)], alone,
                              rtol=1e-12 if fixed else 1e-6, atol=1e-12 if fixed else 1e-8)

"""Accuracy against the float64 truth across the non-stiff registry: tolerance proportionality
and agreement with torchdiffeq's dopri5 at matched settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import odebench
from odebench import problems, reference

NONSTIFF = [n for n in problems.names(stiff=False) if n not in ("mlp_large",)]
TOLS = (1e-4, 1e-6, 1e-8, 1e-10)


def _global_error(name: str, method: str, tol: float) -> float:
    problem = problems.get(name)
    truth = reference.solution(problem).ys
    with torch.no_grad():
        ys = odebench.odeint(problem.func(), problem.y0, problem.t_eval, method=method,
                             rtol=tol, atol=tol).numpy()
    return float(np.linalg.norm(ys - truth) / np.linalg.norm(truth))


@pytest.mark.parametrize("name", NONSTIFF)
def test_tolerance_proportionality(name: str):
    """rtol = atol from 1e-4 to 1e-10 (dopri5, float64): the global error (relative L2 over all
    output times) decreases with the tolerance and stays within 100 x rtol."""
    errors = [_global_error(name, "dopri5", tol) for tol in TOLS]
    for tol, err in zip(TOLS, errors):
        assert err <= 100 * tol, (name, tol, errors)
    assert all(a > b for a, b in zip(errors, errors[1:])), (name, errors)


@pytest.mark.parametrize("name", NONSTIFF)
def test_agrees_with_torchdiffeq(name: str):
    """Same method, same tolerances: both solutions within the tolerance of each other; NFEs of
    both are printed (run with -s)."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    problem = problems.get(name)
    func = problem.func()
    with torch.no_grad():
        sol = odebench.solve(func, problem.y0, problem.t_eval, rtol=1e-8, atol=1e-8)
        theirs = torchdiffeq.odeint(func, problem.y0, problem.t_eval, rtol=1e-8, atol=1e-8)
    diff = float((sol.ys - theirs).norm() / theirs.norm())
    print(f"{name}: odebench nfe {sol.stats.nfe}, relative difference {diff:.2e}")
    assert diff <= 1e-5

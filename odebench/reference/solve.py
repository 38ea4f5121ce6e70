"""``solution(problem)``: the float64 SciPy reference trajectory at the output times."""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext

import numpy as np
import torch

from odebench.problems.base import Problem
from odebench.reference import cache as disk
from odebench.reference.bridge import TorchSystem, single_threaded
from odebench.reference.integrate import Trajectory, integrate
from odebench.reference.records import ReferenceSolution
from odebench.reference.settings import Settings, resolve


def as_float64(problem: Problem) -> Problem:
    """The problem converted to float64 on the CPU and detached from any graph (a copy)."""
    converted = problem.to(dtype=torch.float64, device="cpu")
    return dataclasses.replace(
        converted,
        y0=converted.y0.detach(),
        p=converted.p.detach(),
        t_eval=converted.t_eval.detach(),
    )


def run_forward(problem: Problem, settings: Settings, *, dense: bool = False) -> Trajectory:
    """Integrate the float64 problem through ``t_eval``; states are flattened to ``[n]``."""
    system = TorchSystem(problem)
    ts = problem.t_eval.numpy()
    y0 = problem.y0.reshape(-1).numpy()
    return integrate(system.f, ts, y0, settings, jac=system.jac, dense=dense)


def solution(
    problem: Problem,
    *,
    method: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    cache: bool = True,
) -> ReferenceSolution:
    """Reference solution of ``problem`` at ``problem.t_eval``, computed in float64 with SciPy.

    Defaults: DOP853 at rtol 1e-13 and atol ``1e-2 * problem.atol`` for non-stiff problems,
    Radau at rtol 1e-12 and atol ``problem.atol`` (Jacobian from ``torch.func.jacrev``) for
    stiff ones. ``ys`` has shape ``[len(t_eval), *y0.shape]``. Cached on disk when ``cache``.
    """
    problem = as_float64(problem)
    settings = resolve(problem, method, rtol, atol)
    key = disk.make_key("solution", problem, _settings_dict(settings)) if cache else ""
    # one process computes an entry at a time; the others wait, then load it
    with disk.exclusive("solution", problem.name, key) if cache else nullcontext():
        if cache:
            stored = disk.load("solution", problem.name, key)
            if stored is not None and _intact(stored, problem):
                return _from_arrays(stored, settings)
        start = time.perf_counter()
        with single_threaded():
            trajectory = run_forward(problem, settings)
        wall = time.perf_counter() - start
        result = ReferenceSolution(
            ts=trajectory.ts.copy(),
            ys=trajectory.ys.reshape((len(trajectory.ts), *problem.y0.shape)),
            method=settings.method,
            rtol=settings.rtol,
            atol=settings.atol,
            nfev=trajectory.nfev,
            njev=trajectory.njev,
            wall_s=wall,
        )
        if cache:
            disk.save("solution", problem.name, key, _to_arrays(result))
    return result


def _settings_dict(settings: Settings) -> dict:
    return {"method": settings.method, "rtol": settings.rtol, "atol": settings.atol}


def _to_arrays(result: ReferenceSolution) -> dict[str, np.ndarray]:
    return {
        "ts": result.ts,
        "ys": result.ys,
        "counts": np.array([result.nfev, result.njev], dtype=np.int64),
        "wall_s": np.array(result.wall_s),
    }


def _intact(arrays: dict[str, np.ndarray], problem: Problem) -> bool:
    expected = (problem.t_eval.numel(), *problem.y0.shape)
    try:
        return (
            arrays["ys"].shape == expected
            and arrays["ts"].shape == expected[:1]
            and arrays["counts"].shape == (2,)
            and bool(np.all(np.isfinite(arrays["ys"])))
        )
    except KeyError:
        return False


def _from_arrays(arrays: dict[str, np.ndarray], settings: Settings) -> ReferenceSolution:
    return ReferenceSolution(
        ts=arrays["ts"],
        ys=arrays["ys"],
        method=settings.method,
        rtol=settings.rtol,
        atol=settings.atol,
        nfev=int(arrays["counts"][0]),
        njev=int(arrays["counts"][1]),
        wall_s=float(arrays["wall_s"]),
    )

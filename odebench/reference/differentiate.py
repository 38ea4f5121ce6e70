"""``gradient(problem, loss)``: float64 reference gradient of a loss of the trajectory."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from torch import Tensor

from odebench.errors import InvalidInputError
from odebench.problems.base import Problem
from odebench.reference import cache as disk
from odebench.reference.adjoint import adjoint_gradient
from odebench.reference.bridge import single_threaded
from odebench.reference.records import ReferenceGradient
from odebench.reference.sensitivity import forward_gradient
from odebench.reference.settings import resolve
from odebench.reference.solve import as_float64, solution

# Forward sensitivities integrate n * (n + m) extra equations; above this, use the adjoint.
FORWARD_SIZE_LIMIT = 20_000
GRADIENT_METHODS = ("forward", "adjoint")

Loss = Callable[[Tensor], Tensor]


def choose_method(n: int, m: int) -> str:
    """``"forward"`` when ``n * (n + m) <= FORWARD_SIZE_LIMIT``, else ``"adjoint"``."""
    return "forward" if n * (n + m) <= FORWARD_SIZE_LIMIT else "adjoint"


def loss_and_cotangent(problem: Problem, ys: np.ndarray, loss: Loss | None) -> tuple[float, np.ndarray]:
    """``(L, dL/dys)`` by autograd; ``ys`` is ``[len(t_eval), *y0.shape]`` float64."""
    ys_t = torch.tensor(ys, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        value = (loss or problem.loss)(ys_t)
        if not (isinstance(value, Tensor) and value.numel() == 1):
            raise InvalidInputError(f"loss must return a scalar tensor, got {value!r}")
        grad = None
        if value.requires_grad:
            (grad,) = torch.autograd.grad(value.reshape(()), ys_t, allow_unused=True)
    cotangent = np.zeros_like(ys) if grad is None else grad.numpy()
    return float(value.detach()), cotangent


def gradient(
    problem: Problem,
    loss: Loss | None = None,
    *,
    method: str | None = None,
    solver: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    cache: bool = True,
) -> ReferenceGradient:
    """dL/dy0 and dL/dp of ``L = loss(ys)`` (default ``problem.loss``) in float64.

    ``ys`` is the reference solution ``[len(t_eval), *y0.shape]``; ``dL/dys`` comes from
    autograd on it. ``method``: ``"forward"`` (forward sensitivities) or ``"adjoint"``
    (continuous adjoint); by default forward when ``n * (n + m) <= 20000``. ``solver``,
    ``rtol``, ``atol``: SciPy settings, defaulting as in :func:`solution`. Cached on disk
    keyed by the problem, the settings and ``dL/dys``.
    """
    if method is not None and method not in GRADIENT_METHODS:
        raise InvalidInputError(f"method must be one of {GRADIENT_METHODS}, got {method!r}")
    problem = as_float64(problem)
    settings = resolve(problem, solver, rtol, atol)
    reference = solution(
        problem, method=settings.method, rtol=settings.rtol, atol=settings.atol, cache=cache
    )
    value, cotangent = loss_and_cotangent(problem, reference.ys, loss)
    n, m = problem.y0.numel(), problem.p.numel()
    kind = method or choose_method(n, m)
    label = f"{kind}/{settings.method}"
    key = ""
    if cache:
        key = disk.make_key(
            "gradient",
            problem,
            {"method": label, "rtol": settings.rtol, "atol": settings.atol},
            extra=cotangent.tobytes(),
        )
    # one process computes an entry at a time; the others wait, then load it
    with disk.exclusive("gradient", problem.name, key) if cache else nullcontext():
        if cache:
            stored = disk.load("gradient", problem.name, key)
            if stored is not None and _intact(stored, n, m):
                return ReferenceGradient(
                    loss=value,
                    dy0=stored["dy0"].reshape(problem.y0.shape),
                    dp=stored["dp"],
                    method=label,
                    wall_s=float(stored["wall_s"]),
                )
        start = time.perf_counter()
        flat = cotangent.reshape(len(reference.ts), n)
        compute = forward_gradient if kind == "forward" else adjoint_gradient
        with single_threaded():
            dy0, dp, _ = compute(problem, settings, flat)
        wall = time.perf_counter() - start
        if cache:
            disk.save("gradient", problem.name, key, {"dy0": dy0, "dp": dp, "wall_s": np.array(wall)})
    return ReferenceGradient(
        loss=value, dy0=dy0.reshape(problem.y0.shape), dp=dp, method=label, wall_s=wall
    )


def _intact(arrays: dict[str, np.ndarray], n: int, m: int) -> bool:
    try:
        dy0, dp = arrays["dy0"], arrays["dp"]
        shapes_ok = dy0.shape == (n,) and dp.shape == (m,)
        return shapes_ok and bool(np.all(np.isfinite(dy0)) and np.all(np.isfinite(dp)))
    except KeyError:
        return False

"""Non-stiff and chaotic problems: decay, harmonic, lotka_volterra, vdp, kepler, lorenz.

Each factory takes keyword arguments that vary the problem (final time ``T``, number of
output points ``n_points``) and returns a float64 :class:`Problem`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.problems.base import Problem, Reference, as_f64, linspace_times

CLOSED_FORM_SOURCE = "closed form"


def _with_closed_form_reference(problem: Problem) -> Problem:
    """Set ``problem.reference`` to its closed form at the final output time."""
    assert problem.closed_form is not None
    with torch.no_grad():
        ys = problem.closed_form(problem.t_eval, problem.y0, problem.p)
    problem.reference = Reference(
        t=float(problem.t_eval[-1]), y=ys[-1].clone(), source=CLOSED_FORM_SOURCE
    )
    return problem


def _decay_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    return -p * y


def _decay_closed_form(t: Tensor, y0: Tensor, p: Tensor) -> Tensor:
    tau = (t - t[0]).unsqueeze(-1)
    return y0 * torch.exp(-p * tau)


def decay(T: float = 1.0, n_points: int = 11) -> Problem:
    """Independent exponential decays ``y_i' = -k_i y_i``, 4 components, ``p = k``."""
    problem = Problem(
        name="decay",
        rhs=_decay_rhs,
        y0=as_f64((1.0, -0.5, 2.0, 0.25)),
        p=as_f64((0.5, 1.0, 2.0, 3.0)),
        t_eval=linspace_times(T, n_points),
        description="Linear exponential decay y_i' = -k_i y_i; closed form y0 * exp(-k t).",
        closed_form=_decay_closed_form,
    )
    return _with_closed_form_reference(problem)


def _harmonic_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    omega = p[0]
    return torch.stack([y[..., 1], -omega * omega * y[..., 0]], dim=-1)


def _harmonic_closed_form(t: Tensor, y0: Tensor, p: Tensor) -> Tensor:
    omega = p[0]
    phase = omega * (t - t[0])
    c, s = torch.cos(phase), torch.sin(phase)
    x0, v0 = y0[0], y0[1]
    return torch.stack([x0 * c + v0 / omega * s, -x0 * omega * s + v0 * c], dim=-1)


def harmonic(T: float = 10.0, n_points: int = 11) -> Problem:
    """Harmonic oscillator ``x' = v, v' = -omega^2 x`` with ``p = (omega,)``."""
    problem = Problem(
        name="harmonic",
        rhs=_harmonic_rhs,
        y0=as_f64((1.0, 0.5)),
        p=as_f64((2.0,)),
        t_eval=linspace_times(T, n_points),
        description="Harmonic oscillator x'' = -omega^2 x; closed form by cos/sin.",
        closed_form=_harmonic_closed_form,
    )
    return _with_closed_form_reference(problem)


def _lotka_volterra_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    x, z = y[..., 0], y[..., 1]
    a, b, c, d = p[0], p[1], p[2], p[3]
    return torch.stack([a * x - b * x * z, -c * z + d * x * z], dim=-1)


def lotka_volterra(T: float = 10.0, n_points: int = 11) -> Problem:
    """Lotka-Volterra predator-prey, ``p = (a, b, c, d) = (1.5, 1, 3, 1)``, ``y0 = (1, 1)``."""
    return Problem(
        name="lotka_volterra",
        rhs=_lotka_volterra_rhs,
        y0=as_f64((1.0, 1.0)),
        # Parameters and initial values of the DifferentialEquations.jl Lotka-Volterra tutorial,
        # https://docs.sciml.ai/DiffEqDocs/stable/getting_started/
        p=as_f64((1.5, 1.0, 3.0, 1.0)),
        t_eval=linspace_times(T, n_points),
        description=(
            "Lotka-Volterra x' = a x - b x y, y' = -c y + d x y "
            "(DifferentialEquations.jl getting-started example, https://docs.sciml.ai/DiffEqDocs/)."
        ),
    )


def _vdp_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    x, v = y[..., 0], y[..., 1]
    mu = p[0]
    return torch.stack([v, mu * (1.0 - x * x) * v - x], dim=-1)


def vdp(T: float = 10.0, n_points: int = 11, mu: float = 1.0) -> Problem:
    """Van der Pol oscillator ``x'' = mu (1 - x^2) x' - x``, ``p = (mu,)``, ``y0 = (2, 0)``."""
    return Problem(
        name="vdp",
        rhs=_vdp_rhs,
        y0=as_f64((2.0, 0.0)),
        p=as_f64((mu,)),
        t_eval=linspace_times(T, n_points),
        description=(
            "Van der Pol oscillator, non-stiff mu = 1 (Hairer, Norsett & Wanner, Solving ODEs I, "
            "Sec. I.16)."
        ),
    )


def _kepler_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    q, v = y[..., :2], y[..., 2:]
    r3 = (q * q).sum(dim=-1, keepdim=True) ** 1.5
    return torch.cat([v, -p[0] * q / r3], dim=-1)


_KEPLER_NEWTON_ITERATIONS = 30


def _kepler_newton(x: Tensor, mean: Tensor, ecos: Tensor, esin: Tensor) -> Tensor:
    """One Newton step for ``F(x) = x - ecos sin x + esin (1 - cos x) - mean = 0``."""
    residual = x - ecos * torch.sin(x) + esin * (1.0 - torch.cos(x)) - mean
    slope = 1.0 - ecos * torch.cos(x) + esin * torch.sin(x)
    return x - residual / slope


def _kepler_closed_form(t: Tensor, y0: Tensor, p: Tensor) -> Tensor:
    """Elliptic two-body motion by Lagrange's f and g functions and Kepler's equation.

    Kepler's equation in the eccentric-anomaly difference ``x`` is solved by a fixed number of
    Newton steps on detached inputs (no data-dependent control flow, so vmap works), then one
    differentiable Newton step from the converged point carries the exact implicit-function
    derivative w.r.t. ``t``, ``y0`` and ``p``.
    (Formulas: Battin, An Introduction to the Mathematics and Methods of Astrodynamics, Ch. 4.)
    """
    mu = p[0]
    q0, v0 = y0[:2], y0[2:]
    r0 = torch.linalg.vector_norm(q0)
    a = 1.0 / (2.0 / r0 - (v0 * v0).sum() / mu)
    sqrt_a = torch.sqrt(a)
    sigma0 = (q0 * v0).sum() / torch.sqrt(mu)
    ecos, esin = 1.0 - r0 / a, sigma0 / sqrt_a
    mean = torch.sqrt(mu / a**3) * (t - t[0])
    x = mean.detach()
    for _ in range(_KEPLER_NEWTON_ITERATIONS):
        x = _kepler_newton(x, mean.detach(), ecos.detach(), esin.detach())
    x = _kepler_newton(x, mean, ecos, esin)
    cos_x, sin_x = torch.cos(x), torch.sin(x)
    r = a + (r0 - a) * cos_x + sigma0 * sqrt_a * sin_x
    f = 1.0 - a / r0 * (1.0 - cos_x)
    g = (t - t[0]) - torch.sqrt(a**3 / mu) * (x - sin_x)
    f_dot = -torch.sqrt(mu * a) / (r * r0) * sin_x
    g_dot = 1.0 - a / r * (1.0 - cos_x)
    q = f.unsqueeze(-1) * q0 + g.unsqueeze(-1) * v0
    v = f_dot.unsqueeze(-1) * q0 + g_dot.unsqueeze(-1) * v0
    return torch.cat([q, v], dim=-1)


def kepler(T: float = 2.0 * math.pi, n_points: int = 11, eccentricity: float = 0.5) -> Problem:
    """Two-body problem ``q'' = -mu q / |q|^3``, ``y = (q1, q2, v1, v2)``, ``p = (mu,)``.

    Starts at pericentre ``q = (1 - e, 0)``, ``v = (0, sqrt((1 + e)/(1 - e)))`` so the orbit
    has semi-major axis 1 and period ``2 pi`` for ``mu = 1``.
    """
    e = eccentricity
    problem = Problem(
        name="kepler",
        rhs=_kepler_rhs,
        # Initial values of Hairer, Lubich & Wanner, Geometric Numerical Integration, Sec. I.2.3.
        y0=as_f64((1.0 - e, 0.0, 0.0, math.sqrt((1.0 + e) / (1.0 - e)))),
        p=as_f64((1.0,)),
        t_eval=linspace_times(T, n_points),
        description=(
            f"Kepler two-body problem, eccentricity {e} (Hairer, Lubich & Wanner, Geometric "
            "Numerical Integration, Sec. I.2.3); closed form via Kepler's equation."
        ),
        closed_form=_kepler_closed_form,
    )
    return _with_closed_form_reference(problem)


def _lorenz_rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    x, u, z = y[..., 0], y[..., 1], y[..., 2]
    sigma, rho, beta = p[0], p[1], p[2]
    return torch.stack([sigma * (u - x), x * (rho - z) - u, x * u - beta * z], dim=-1)


def lorenz(T: float = 1.0, n_points: int = 11) -> Problem:
    """Lorenz system with ``p = (sigma, rho, beta) = (10, 28, 8/3)``, ``y0 = (1, 1, 1)``."""
    return Problem(
        name="lorenz",
        rhs=_lorenz_rhs,
        y0=as_f64((1.0, 1.0, 1.0)),
        # Classic parameters: E. N. Lorenz, "Deterministic nonperiodic flow", J. Atmos. Sci. 1963.
        p=as_f64((10.0, 28.0, 8.0 / 3.0)),
        t_eval=linspace_times(T, n_points),
        chaotic=True,
        description=(
            "Lorenz system, sigma=10, rho=28, beta=8/3 (Lorenz, J. Atmos. Sci. 20:130, 1963); "
            "chaotic, largest Lyapunov exponent ~0.906."
        ),
    )


FACTORIES: dict[str, Callable[..., Problem]] = {
    "decay": decay,
    "harmonic": harmonic,
    "lotka_volterra": lotka_volterra,
    "vdp": vdp,
    "kepler": kepler,
    "lorenz": lorenz,
}

"""Continuous normalizing flows (FFJORD: Grathwohl et al., ICLR 2019).

dz/dt = f(t, z), d(logdet)/dt = tr(df/dz); with base density p0 at t = 0,
log p(z(T)) = log p0(z(0)) - int_0^T tr(df/dz) dt.
The trace is exact (D backward passes) or Hutchinson's estimate eps^T (df/dz) eps with the noise
eps drawn once per solve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from odebench.models.odenet import CountedDynamics, SolverConfig, integrate

TRACES = ("exact", "hutchinson")
NOISES = ("rademacher", "gaussian")


class ConcatLinear(nn.Module):
    """Linear layer on [t, x]: x [B, in] -> [B, out]."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features + 1, out_features)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([t.to(x).expand(x.shape[0], 1), x], dim=1))


class TimeMLP(nn.Module):
    """Time-conditioned MLP field: concat-t layers, tanh or softplus; z [B, D] -> [B, D]."""

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64, 64), activation: str = "tanh"):
        super().__init__()
        self.dim = dim
        acts = {"tanh": nn.Tanh, "softplus": nn.Softplus}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        sizes = [dim, *hidden, dim]
        self.layers = nn.ModuleList(
            ConcatLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.act = acts[activation]()

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            z = layer(t, z)
            if i < len(self.layers) - 1:
                z = self.act(z)
        return z


class _TraceDynamics(nn.Module):
    """Augmented field on the flat state [B, D + 1] = (z, l): returns (f(t, z), tr(df/dz)).

    One instance per solve, so the Hutchinson noise ``eps`` [B, D] stays fixed for that solve,
    its backward pass included.
    """

    def __init__(self, func: CountedDynamics, trace: str, eps: torch.Tensor | None):
        super().__init__()
        self.func = func
        self.trace = trace
        self.eps = eps

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            z = state[:, :-1]
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            dz = self.func(t, z)
            if self.trace == "exact":
                tr = exact_trace(dz, z, create_graph)
            else:
                tr = hutchinson_trace(dz, z, self.eps, create_graph)
        if not create_graph:
            dz, tr = dz.detach(), tr.detach()
        return torch.cat([dz, tr.unsqueeze(1)], dim=1)


def exact_trace(f: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """tr(df/dz) per sample, by D backward passes; f and z [B, D] -> [B].

    Summing over the batch before differentiating assumes samples do not interact in f.
    """
    tr = torch.zeros_like(f[:, 0])
    for i in range(z.shape[1]):
        (g,) = torch.autograd.grad(
            f[:, i].sum(), z, create_graph=create_graph, retain_graph=True, allow_unused=True
        )
        if g is not None:
            tr = tr + g[:, i]
    return tr


def hutchinson_trace(
    f: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None, create_graph: bool
) -> torch.Tensor:
    """Hutchinson's unbiased estimate eps^T (df/dz) eps per sample (one VJP); [B, D] -> [B]."""
    if eps is None:
        raise ValueError("the Hutchinson estimator needs noise eps")
    (vjp,) = torch.autograd.grad(f, z, eps, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(f[:, 0]) if vjp is None else (vjp * eps).sum(dim=1)


def standard_normal_logprob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over features; z [B, D] -> [B]."""
    return -0.5 * (z.pow(2).sum(dim=1) + z.shape[1] * math.log(2 * math.pi))


class CNF(nn.Module):
    """A continuous normalizing flow on R^D with a standard Gaussian base at t = 0.

    Args:
        dynamics: any module ``dynamics(t, z)`` with z [B, D] -> [B, D] (e.g. TimeMLP) that
            treats samples independently (no batch statistics).
        T: flow time; data live at t = T.
        trace: "exact" (autograd, D passes) or "hutchinson" (one VJP, unbiased).
        method, rtol, atol, gradient, options: passed to ``odebench.solve``.
        noise: Hutchinson noise, "rademacher" or "gaussian".
        step_size: fixed step of euler/midpoint/rk4.
        dim: data dimension for ``sample``; by default ``dynamics.dim`` where it exists.
    """

    def __init__(
        self,
        dynamics: nn.Module,
        T: float = 1.0,
        trace: str = "exact",
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        gradient: str = "backprop",
        noise: str = "rademacher",
        step_size: float | None = None,
        dim: int | None = None,
    ):
        super().__init__()
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {TRACES}, got {trace!r}")
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
        self.func = CountedDynamics(dynamics)
        self.T = T
        self.trace = trace
        self.noise = noise
        self.dim = dim if dim is not None else getattr(dynamics, "dim", None)
        self.solver = SolverConfig(method, rtol, atol, gradient, step_size)

    def _noise(self, z: torch.Tensor) -> torch.Tensor | None:
        if self.trace == "exact":
            return None
        if self.noise == "gaussian":
            return torch.randn_like(z)
        return torch.randint_like(z, 0, 2) * 2 - 1

    def flow(self, z: torch.Tensor, t0: float, t1: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate from t0 to t1: returns z(t1) [B, D] and int_{t0}^{t1} tr(df/dz) dt [B]."""
        state = torch.cat([z, z.new_zeros(z.shape[0], 1)], dim=1)
        field = _TraceDynamics(self.func, self.trace, self._noise(z))
        t = torch.tensor([t0, t1], dtype=z.dtype, device=z.device)
        end = integrate(field, state, t, self.solver, self.func.solves)[-1]
        return end[:, :-1], end[:, -1]

    def forward(self, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z0 [B, D] -> (z(T) [B, D], logdet [B]) with logdet = int_0^T tr(df/dz) dt."""
        return self.flow(z0, 0.0, self.T)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) [B] of data x [B, D]: x flows from T back to 0 and is scored by the base."""
        z0, neg_logdet = self.flow(x, self.T, 0.0)
        return standard_normal_logprob(z0) + neg_logdet

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples [n, D] of the model: z0 ~ N(0, I) pushed forward to t = T."""
        if self.dim is None:
            raise ValueError("CNF.sample needs the data dimension: pass dim= to CNF")
        param = next(self.parameters())
        z0 = torch.randn(n, self.dim, generator=generator, dtype=param.dtype, device=param.device)
        return self.forward(z0)[0]

"""A continuous normalizing flow as a ``Problem``: FFJORD's density model on a 2-D toy data set.

Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative
Models" (ICLR 2019): data ``x`` at ``t = 0`` flow to a standard normal base at ``t = T`` along
``dz/dt = g(t, z)``, and ``d l/dt = tr(dg/dz)`` with ``l(0) = 0`` gives
``log p(x) = log N(z(T); 0, I) + l(T)``. The loss is the negative mean log-likelihood of a batch.

The field is FFJORD's toy architecture with tanh: a time-concatenated MLP ``[t, h] -> h`` (as
:class:`odebench.models.cnf.TimeMLP`), here written on one flat parameter vector ``p`` so that
it is a ``Problem`` (its float64 reference gradient and every backend's adjoint take it). The
trace is exact and in closed form, the forward-mode product of the layer Jacobians
``J = W_L^z diag(tanh') ... diag(tanh') W_1^z`` (``W^z``: the columns acting on ``h``), so the
right-hand side is plain torch operations (no autograd inside it) and works under
``torch.func``.

Not in the problem registry: the ``seminorm`` study builds these problems itself
(:func:`density_flow`), and the registry's every-problem tests stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from odebench.errors import InvalidInputError
from odebench.problems.base import Problem, linspace_times

#: Data dimension of the toy densities.
DIM = 2
#: FFJORD's toy flows: three hidden layers of 64 (train_toy.py, ``--dims 64,64,64``).
HIDDEN = (64, 64, 64)
#: How :func:`density_flow` trains: batch, Adam's learning rate and the solves' rtol = atol
#: (FFJORD's train_toy.py: batch 200, lr 1e-3, rtol = atol = 1e-5, 10,000 iterations; a
#: larger rate reaches structured dynamics in the few steps a benchmark can afford).
TRAINING = {"batch": 128, "lr": 1e-2, "tol": 1e-4}
#: Biases ~ N(0, BIAS_SCALE^2); weights ~ N(0, 1/fan_in) (fan_in counts the time input).
BIAS_SCALE = 0.1


def layer_sizes(dim: int, hidden: Sequence[int]) -> list[tuple[int, int]]:
    """``(fan_in, fan_out)`` of each concat-t layer: ``fan_in`` counts the time input."""
    sizes = [dim, *hidden, dim]
    return [(a + 1, b) for a, b in zip(sizes[:-1], sizes[1:], strict=False)]


def n_params(dim: int = DIM, hidden: Sequence[int] = HIDDEN) -> int:
    """Weights and biases of the field."""
    return sum(a * b + b for a, b in layer_sizes(dim, hidden))


def make_rhs(dim: int, hidden: Sequence[int]) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``rhs(t, y, p)`` of the flow: ``y`` [B, dim + 1] is ``(z, l)``; returns
    ``(g(t, z), tr(dg/dz))`` [B, dim + 1]."""
    layers = layer_sizes(dim, hidden)

    def rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
        h = y[:, :dim]
        tangent = torch.eye(dim, dtype=y.dtype, device=y.device).expand(y.shape[0], dim, dim)
        offset = 0
        for index, (fan_in, fan_out) in enumerate(layers):
            w = p[offset: offset + fan_in * fan_out].reshape(fan_out, fan_in)
            offset += fan_in * fan_out
            b = p[offset: offset + fan_out]
            offset += fan_out
            w_t, w_h = w[:, 0], w[:, 1:]
            h = h @ w_h.T + t.to(y) * w_t + b
            tangent = tangent @ w_h.T  # [B, dim, fan_out]: d(pre-activation)/dz, row per z_j
            if index < len(layers) - 1:
                h = torch.tanh(h)
                tangent = tangent * (1.0 - h * h).unsqueeze(1)
        trace = torch.diagonal(tangent, dim1=1, dim2=2).sum(dim=1)
        return torch.cat([h, trace.unsqueeze(1)], dim=1)

    return rhs


def standard_normal_logprob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension; z [..., D] -> [...]."""
    return -0.5 * (z.pow(2).sum(dim=-1) + z.shape[-1] * math.log(2 * math.pi))


@dataclass
class DensityFlow(Problem):
    """A CNF problem whose loss is the negative mean log-likelihood of its batch."""

    def loss(self, ys: Tensor) -> Tensor:
        """``-mean_b log p(x_b)`` from ``ys`` [T, B, dim + 1]: ``log N(z(T)) + l(T)``."""
        end = ys[-1]
        return -(standard_normal_logprob(end[:, :-1]) + end[:, -1]).mean()


def density_flow(density: str = "eight_gaussians", batch: int = 64,
                 hidden: Sequence[int] = HIDDEN, seed: int = 0, T: float = 1.0,
                 train_steps: int = 0) -> DensityFlow:
    """The flow of a batch of ``batch`` points of the toy ``density`` (a key of
    :data:`odebench.models.data.TOY_DENSITIES`, drawn with ``seed``) from ``t = 0`` to ``T``,
    float64, under the random field seeded by ``seed`` after ``train_steps`` training steps
    (:func:`train`, with :data:`TRAINING`'s settings; 0: the random field itself)."""
    from odebench.models.data import TOY_DENSITIES, sample_toy

    if density not in TOY_DENSITIES:
        raise InvalidInputError(
            f"unknown density {density!r}; valid: {', '.join(sorted(TOY_DENSITIES))}")
    for name, value, low in (("batch", batch, 1), ("train_steps", train_steps, 0)):
        if isinstance(value, bool) or not (isinstance(value, int) and value >= low):
            raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}")
    hidden = tuple(int(h) for h in hidden)
    gen = torch.Generator().manual_seed(seed)
    chunks = []
    for fan_in, fan_out in layer_sizes(DIM, hidden):
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64)
        chunks += [(w / math.sqrt(fan_in)).reshape(-1),
                   BIAS_SCALE * torch.randn(fan_out, generator=gen, dtype=torch.float64)]
    x = sample_toy(density, batch, seed, dtype=torch.float64)
    problem = DensityFlow(
        name=f"cnf_{density}",
        rhs=make_rhs(DIM, hidden),
        y0=torch.cat([x, x.new_zeros(batch, 1)], dim=1),
        p=torch.cat(chunks),
        t_eval=linspace_times(T, 2),
        description=(f"FFJORD-style CNF (Grathwohl et al., ICLR 2019) on {batch} points of "
                     f"{density} (seed {seed}): concat-t tanh MLP {DIM}-{'-'.join(map(str, hidden))}"
                     f"-{DIM}, random weights N(0, 1/fan_in) after {train_steps} Adam steps, "
                     "exact trace; loss -mean log p"),
    )
    if train_steps:
        problem.p = train(problem, density, train_steps, seed, **TRAINING)
    return problem


def train(problem: DensityFlow, density: str, steps: int, seed: int, batch: int, lr: float,
          tol: float) -> Tensor:
    """The parameters after ``steps`` Adam steps (learning rate ``lr``) on the flow's loss,
    each on a fresh batch of ``batch`` points of ``density`` (seeds ``seed + 1 + step``), the
    solves by dopri5 at rtol = atol = ``tol`` with ``gradient="backprop"``; float64, detached.
    Deterministic on the CPU (one thread: the reduction order is fixed)."""
    from odebench.api import solve
    from odebench.models.data import sample_toy

    func = problem.func()
    optimizer = torch.optim.Adam(func.parameters(), lr=lr)
    for step in range(steps):
        x = sample_toy(density, batch, seed + 1 + step, dtype=torch.float64)
        y0 = torch.cat([x, x.new_zeros(batch, 1)], dim=1)
        sol = solve(func, y0, problem.t_eval, method="dopri5", rtol=tol, atol=tol)
        optimizer.zero_grad()
        problem.loss(sol.ys).backward()
        optimizer.step()
    return func.p.detach().clone()

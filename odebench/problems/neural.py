"""Neural vector fields: a random tanh MLP ``f(t, y) = MLP_p(y)`` with seeded weights.

``p`` is the flattened list of weights and biases, layer by layer (weight ``[out, in]``
row-major, then bias ``[out]``), so gradients w.r.t. every weight exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.errors import InvalidInputError
from odebench.problems.base import Problem, linspace_times

# Gain of the last layer: keeps |f| and the Lipschitz constant O(1), i.e. non-stiff dynamics.
OUTPUT_GAIN = 0.5
BIAS_SCALE = 0.1


def _layer_sizes(dim: int, width: int, depth: int) -> list[tuple[int, int]]:
    """``(fan_in, fan_out)`` of each linear layer: ``dim -> width x depth -> dim``."""
    sizes = [dim] + [width] * depth + [dim]
    return list(zip(sizes[:-1], sizes[1:]))


def _init_params(layers: list[tuple[int, int]], gen: torch.Generator) -> Tensor:
    """Weights ~ N(0, 1/fan_in) (times ``OUTPUT_GAIN`` in the last layer), biases ~ N(0, 0.01)."""
    chunks = []
    for index, (fan_in, fan_out) in enumerate(layers):
        gain = OUTPUT_GAIN if index == len(layers) - 1 else 1.0
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64)
        chunks.append((gain / math.sqrt(fan_in) * w).reshape(-1))
        chunks.append(BIAS_SCALE * torch.randn(fan_out, generator=gen, dtype=torch.float64))
    return torch.cat(chunks)


def make_mlp_rhs(dim: int, width: int, depth: int) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``rhs(t, y, p)`` of the MLP with the given shape; ``y`` is ``[..., dim]``."""
    layers = _layer_sizes(dim, width, depth)

    def rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
        h, offset = y, 0
        for index, (fan_in, fan_out) in enumerate(layers):
            w = p[offset : offset + fan_in * fan_out].reshape(fan_out, fan_in)
            offset += fan_in * fan_out
            b = p[offset : offset + fan_out]
            offset += fan_out
            h = h @ w.T + b
            if index < len(layers) - 1:
                h = torch.tanh(h)
        return h

    return rhs


def mlp(
    width: int = 32,
    depth: int = 2,
    dim: int = 4,
    batch: int = 16,
    seed: int = 0,
    T: float = 1.0,
    n_points: int = 11,
) -> Problem:
    """A random autonomous tanh MLP vector field; ``y0`` is ``[batch, dim]`` drawn from N(0, 1)."""
    for arg, value in (("width", width), ("depth", depth), ("dim", dim), ("batch", batch)):
        if not (isinstance(value, int) and value >= 1):
            raise InvalidInputError(f"{arg} must be a positive integer, got {value!r}")
    gen = torch.Generator().manual_seed(seed)
    p = _init_params(_layer_sizes(dim, width, depth), gen)
    y0 = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return Problem(
        name="mlp",
        rhs=make_mlp_rhs(dim, width, depth),
        y0=y0,
        p=p,
        t_eval=linspace_times(T, n_points),
        description=(
            f"Random tanh MLP vector field (dim {dim}, width {width}, depth {depth}, batch {batch}, "
            f"seed {seed}); weights N(0, 1/fan_in), output gain {OUTPUT_GAIN}, as in Chen et al., "
            "Neural ODEs (NeurIPS 2018)."
        ),
    )


def mlp_small() -> Problem:
    """The small MLP variant for overhead studies: dim 2, batch 1, width 32, depth 2."""
    problem = mlp(width=32, depth=2, dim=2, batch=1)
    problem.name = "mlp_small"
    return problem


def mlp_large() -> Problem:
    """The large MLP variant for overhead studies: dim 32, batch 256, width 64, depth 2."""
    problem = mlp(width=64, depth=2, dim=32, batch=256)
    problem.name = "mlp_large"
    return problem


FACTORIES: dict[str, Callable[..., Problem]] = {
    "mlp": mlp,
    "mlp_small": mlp_small,
    "mlp_large": mlp_large,
}

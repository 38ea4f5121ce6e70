"""ODE-Net (Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018) and a ResNet twin.

Also the plumbing every model here shares: a solver configuration, a dynamics wrapper that counts
evaluations and keeps the solver's statistics, and ``integrate`` that calls ``odebench.solve``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import odebench
from odebench.solution import Stats


@dataclass(frozen=True)
class SolverConfig:
    """How a model integrates: method, tolerances, gradient method and fixed step size."""

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-4
    gradient: str = "backprop"
    step_size: float | None = None

    def options(self) -> dict[str, Any] | None:
        """The ``options=`` dict of ``odebench.solve``."""
        return None if self.step_size is None else {"step_size": self.step_size}


class CountedDynamics(nn.Module):
    """Wraps ``dynamics(t, y)``; counts its calls in ``calls`` and keeps the Stats of each solve.

    ``solves`` holds the ``odebench.Stats`` of the latest ``MAX_SOLVES`` solves made through
    :func:`integrate` (bounded, so long inference loops do not accumulate them); the solver fills
    in their ``nfe_backward`` and ``saved_bytes`` during ``.backward()``. Training loops clear it
    once per iteration.
    """

    MAX_SOLVES = 4096

    def __init__(self, dynamics: nn.Module):
        super().__init__()
        self.dynamics = dynamics
        self.calls = 0
        self.solves: deque[Stats] = deque(maxlen=self.MAX_SOLVES)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.dynamics(t, y)


def integrate(
    func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    t: torch.Tensor,
    solver: SolverConfig,
    log: deque[Stats] | list[Stats] | None = None,
) -> torch.Tensor:
    """``odebench.solve(func, y0, t, ...)``: the states, shape [len(t), *y0.shape].

    The solve's Stats are appended to ``log`` when one is given.
    """
    sol = odebench.solve(
        func, y0, t, method=solver.method, rtol=solver.rtol, atol=solver.atol,
        gradient=solver.gradient, options=solver.options(),
    )
    if log is not None:
        log.append(sol.stats)
    return sol.ys


def counted(model: nn.Module) -> list[CountedDynamics]:
    """Every CountedDynamics inside ``model``."""
    return [m for m in model.modules() if isinstance(m, CountedDynamics)]


class ODEBlock(nn.Module):
    """x -> z(T) where dz/dt = dynamics(t, z), z(0) = x; any state shape.

    ``dynamics`` is wrapped in a CountedDynamics (attribute ``func``).
    """

    def __init__(self, dynamics: nn.Module, solver: SolverConfig, T: float = 1.0):
        super().__init__()
        self.func = CountedDynamics(dynamics)
        self.solver = solver
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.tensor([0.0, self.T], dtype=x.dtype, device=x.device)
        return integrate(self.func, x, t, self.solver, self.func.solves)[-1]


class ConcatConv2d(nn.Module):
    """3x3 convolution of [t, x] (t broadcast as an extra input channel); x [B, C, H, W]."""

    def __init__(self, c_in: int, c_out: int, time: bool = True):
        super().__init__()
        self.time = time
        self.conv = nn.Conv2d(c_in + int(time), c_out, 3, padding=1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.time:
            tt = t.to(x).expand(x.shape[0], 1, *x.shape[2:])
            x = torch.cat([tt, x], dim=1)
        return self.conv(x)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ConvDynamics(nn.Module):
    """Chen et al.'s ODE function: norm-ReLU-conv-norm-ReLU-conv-norm, time as a channel.

    ``time=False`` gives the residual branch of the matching ResNet block. State [B, C, H, W].
    """

    def __init__(self, channels: int, time: bool = True):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = _norm(channels), _norm(channels), _norm(channels)
        self.conv1 = ConcatConv2d(channels, channels, time)
        self.conv2 = ConcatConv2d(channels, channels, time)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(t, torch.relu(self.norm1(x)))
        h = self.conv2(t, torch.relu(self.norm2(h)))
        return self.norm3(h)


class MLPDynamics(nn.Module):
    """dz/dt = W2 tanh(W1 [t, z] + b1) + b2 for a flat state [B, D]; ``time=False`` drops t."""

    def __init__(self, dim: int, hidden: int, time: bool = True):
        super().__init__()
        self.time = time
        self.net = nn.Sequential(
            nn.Linear(dim + int(time), hidden), nn.Tanh(), nn.Linear(hidden, dim)
        )

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.time:
            z = torch.cat([t.to(z).expand(z.shape[0], 1), z], dim=1)
        return self.net(z)


def digits_stem(channels: int) -> nn.Sequential:
    """[B, 1, 8, 8] -> [B, channels, 4, 4]: conv3x3, then a strided conv4x4 downsampling."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        _norm(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 4, stride=2, padding=1),
    )


def classifier_head(channels: int, n_classes: int, pixels: int = 16) -> nn.Sequential:
    """[B, channels, H, W] -> logits [B, n_classes]: norm, ReLU, flatten, linear.

    ``pixels`` = H * W (16 for the 4x4 maps of the digits stem). On 8x8 digits a linear map of
    the whole feature map trains far faster than global average pooling.
    """
    return nn.Sequential(
        _norm(channels), nn.ReLU(), nn.Flatten(), nn.Linear(channels * pixels, n_classes)
    )


class ZeroAugment(nn.Module):
    """Append ``extra`` zero channels/features along dim 1 (Dupont, Doucet & Teh, NeurIPS 2019).

    [B, C, ...] -> [B, C + extra, ...]; the identity when ``extra`` is 0.
    """

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra == 0:
            return x
        zeros = x.new_zeros(x.shape[0], self.extra, *x.shape[2:])
        return torch.cat([x, zeros], dim=1)


class _Flatten(nn.Module):
    """[B, C, H, W] -> [B, C*H*W] and back, around an MLP ODE block."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x.flatten(1)).view(x.shape[0], -1, *x.shape[2:])


class ODENet(nn.Module):
    """stem -> (zero-pad ``augment`` channels) -> ODE block -> head; images [B, 1, 8, 8] -> logits.

    Args:
        channels: width of the stem and of the ODE state (before augmentation).
        dynamics: "conv" (ConvDynamics) or "mlp" (MLPDynamics on the flattened 4x4 feature map).
        augment: zero channels appended to the state (Dupont et al. 2019); 0 for a plain ODE-Net.
        solver: method, tolerances and gradient method of the ODE block.
    """

    def __init__(
        self,
        channels: int = 32,
        dynamics: str = "conv",
        augment: int = 0,
        solver: SolverConfig | None = None,
        n_classes: int = 10,
        mlp_hidden: int = 128,
    ):
        super().__init__()
        width = channels + augment
        self.stem = digits_stem(channels)
        self.augment = ZeroAugment(augment)
        solver = solver or SolverConfig()
        if dynamics == "conv":
            self.block: nn.Module = ODEBlock(ConvDynamics(width), solver)
        elif dynamics == "mlp":
            self.block = _Flatten(ODEBlock(MLPDynamics(width * 16, mlp_hidden), solver))
        else:
            raise ValueError(f"dynamics must be 'conv' or 'mlp', got {dynamics!r}")
        self.head = classifier_head(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.augment(self.stem(x))))


class ResidualBlock(nn.Module):
    """x + f(x) with f the time-free ConvDynamics: one Euler step of the ODE-Net's flow."""

    def __init__(self, channels: int):
        super().__init__()
        self.f = ConvDynamics(channels, time=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x.new_zeros(()), x)


class ResNet(nn.Module):
    """The ODE-Net's stem and head around ``n_blocks`` residual blocks with their own weights."""

    def __init__(self, channels: int = 32, n_blocks: int = 4, n_classes: int = 10):
        super().__init__()
        self.stem = digits_stem(channels)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(n_blocks)])
        self.head = classifier_head(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def n_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

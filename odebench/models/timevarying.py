"""Dynamics with time-varying weights in the spirit of ANODEV2 (Zhang et al., arXiv:1906.04596).

Each weight matrix is a small basis expansion W(t) = sum_k phi_k(t) W_k; the W_k are ordinary
parameters, so every gradient method (backprop or adjoint) differentiates them.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def basis(t: torch.Tensor, n_basis: int, kind: str, T: float) -> torch.Tensor:
    """Basis functions at time t (0-d tensor), shape [n_basis].

    "fourier": 1, sin(2 pi t/T), cos(2 pi t/T), sin(4 pi t/T), ...;
    "legendre": Legendre polynomials P_0..P_{n-1} of s = 2 t/T - 1.
    """
    if kind == "fourier":
        phis = [torch.ones_like(t)]
        for k in range(1, n_basis):
            w = 2 * math.pi * ((k + 1) // 2) / T
            phis.append(torch.sin(w * t) if k % 2 else torch.cos(w * t))
        return torch.stack(phis)
    if kind == "legendre":
        s = 2 * t / T - 1
        phis = [torch.ones_like(s), s][:n_basis]
        for n in range(2, n_basis):
            phis.append(((2 * n - 1) * s * phis[-1] - (n - 1) * phis[-2]) / n)
        return torch.stack(phis)
    raise ValueError(f"basis kind must be 'fourier' or 'legendre', got {kind!r}")


class TimeVaryingLinear(nn.Module):
    """y = x W(t)^T + b(t) with W(t) = sum_k phi_k(t) W_k; x [..., in] -> [..., out].

    Parameters: ``weight`` [n_basis, out, in] and ``bias`` [n_basis, out]. The k > 0 coefficients
    start at zero, so the layer starts as an ordinary (time-constant) Linear.
    """

    def __init__(
        self, in_features: int, out_features: int, n_basis: int = 3, kind: str = "fourier",
        T: float = 1.0,
    ):
        super().__init__()
        self.n_basis, self.kind, self.T = n_basis, kind, T
        init = nn.Linear(in_features, out_features)
        weight = torch.zeros(n_basis, out_features, in_features)
        bias = torch.zeros(n_basis, out_features)
        weight[0], bias[0] = init.weight.detach(), init.bias.detach()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        phi = basis(t.to(x), self.n_basis, self.kind, self.T)
        w = torch.tensordot(phi, self.weight, dims=1)
        b = torch.tensordot(phi, self.bias, dims=1)
        return x @ w.T + b


class TimeVaryingMLP(nn.Module):
    """Vector field f(t, z) = L_n(t, tanh(... tanh(L_1(t, z)))) with TimeVaryingLinear layers.

    z [B, dim] -> dz/dt [B, dim].
    """

    def __init__(
        self, dim: int, hidden: int = 32, n_layers: int = 2, n_basis: int = 3,
        kind: str = "fourier", T: float = 1.0,
    ):
        super().__init__()
        sizes = [dim] + [hidden] * (n_layers - 1) + [dim]
        self.layers = nn.ModuleList(
            TimeVaryingLinear(a, b, n_basis, kind, T)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            z = layer(t, z)
            if i < len(self.layers) - 1:
                z = torch.tanh(z)
        return z

"""Augmented neural ODEs (Dupont, Doucet & Teh, "Augmented Neural ODEs", NeurIPS 2019).

A neural ODE is a homeomorphism of its state space, so a 1-D flow cannot map -1 -> 1 and
1 -> -1; padding the state with zero dimensions lets trajectories pass around each other.
"""

from __future__ import annotations

import torch
from torch import nn

from odebench.models.odenet import MLPDynamics, ODEBlock, SolverConfig, ZeroAugment

__all__ = ["AugmentedNODE", "ZeroAugment"]


class AugmentedNODE(nn.Module):
    """A small regressor: pad ``augment`` zeros, flow for time T, read out.

    x [B, data_dim] -> [B, out_dim].

    Args:
        data_dim: input features.
        augment: zero dimensions appended to the state; 0 gives a plain neural ODE.
        hidden: width of the MLP vector field (time-conditioned).
        readout: "project" returns the first ``out_dim`` coordinates of z(T) (no learned map, so
            the flow alone must do the work, as in Dupont et al.'s 1-D example); "linear" applies
            a learned linear layer to z(T).
        out_dim: output features.
        solver: method, tolerances and gradient method.
        dynamics: optional vector field on [B, data_dim + augment] replacing the default MLP.
    """

    def __init__(
        self,
        data_dim: int,
        augment: int = 0,
        hidden: int = 32,
        readout: str = "project",
        out_dim: int | None = None,
        solver: SolverConfig | None = None,
        dynamics: nn.Module | None = None,
        T: float = 1.0,
    ):
        super().__init__()
        width = data_dim + augment
        self.out_dim = out_dim or data_dim
        self.augment = ZeroAugment(augment)
        self.block = ODEBlock(dynamics or MLPDynamics(width, hidden), solver or SolverConfig(), T)
        if readout == "project":
            if self.out_dim > width:
                raise ValueError(f"out_dim {self.out_dim} exceeds the state width {width}")
            self.readout: nn.Linear | None = None
        elif readout == "linear":
            self.readout = nn.Linear(width, self.out_dim)
        else:
            raise ValueError(f"readout must be 'project' or 'linear', got {readout!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.block(self.augment(x))
        return z[:, : self.out_dim] if self.readout is None else self.readout(z)

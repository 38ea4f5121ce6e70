"""Reference neural-ODE models built on ``odebench.solve``: CNF, latent ODE, ODE-Net, ANODE.

``train`` holds seeded training loops returning one TrainRecord per (model, gradient).
"""

from odebench.models.augmented import AugmentedNODE, ZeroAugment
from odebench.models.cnf import CNF, ConcatLinear, TimeMLP
from odebench.models.latent_ode import GRUBaseline, LatentODE, RecognitionEncoder
from odebench.models.odenet import (
    CountedDynamics,
    ODEBlock,
    ODENet,
    ResNet,
    SolverConfig,
    integrate,
)
from odebench.models.timevarying import TimeVaryingLinear, TimeVaryingMLP

__all__ = [
    "CNF",
    "AugmentedNODE",
    "ConcatLinear",
    "CountedDynamics",
    "GRUBaseline",
    "LatentODE",
    "ODEBlock",
    "ODENet",
    "RecognitionEncoder",
    "ResNet",
    "SolverConfig",
    "TimeMLP",
    "TimeVaryingLinear",
    "TimeVaryingMLP",
    "ZeroAugment",
    "integrate",
]

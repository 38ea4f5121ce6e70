"""Study ``memory_scaling``: bytes saved for backward and peak resident memory vs integration
length and vs MLP width — backprop against the adjoints and the peers.

MLP field: state 8, batch 32, width 64, two hidden layers (the width sweep varies the width).
"""

from __future__ import annotations

from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point

NAME = "memory_scaling"
GRADIENTS = {"odebench": ("backprop", "backsolve", "interpolated", "checkpointed"),
             "torchdiffeq": ("backprop", "backsolve")}
BASE = {"dim": 8, "batch": 32, "width": 64, "depth": 2}
QUICK = {"T": (1.0, 10.0), "widths": (), "rss": False}
FULL = {"T": (1.0, 2.0, 5.0, 10.0), "widths": (16, 64, 256), "rss": True}


def grid(settings: Settings) -> list[Row]:
    spec = QUICK if settings.mode == "quick" else FULL
    configs = [{**BASE, "T": T} for T in spec["T"]]
    configs += [{**BASE, "width": w, "T": 1.0} for w in spec["widths"] if w != BASE["width"]]
    return [point(NAME, settings, "mlp", backend, "dopri5", gradient, rtol=1e-6, atol=1e-6,
                  problem_kwargs=kwargs, width=kwargs["width"],
                  batch=kwargs["batch"], state_dim=kwargs["dim"])
            for kwargs in configs for backend in available_backends(tuple(GRADIENTS))
            for gradient in GRADIENTS[backend]]


def execute(row: Row, settings: Settings) -> Row:
    spec = QUICK if settings.mode == "quick" else FULL
    return measure(row, settings, options={"max_num_steps": 50_000}, repeats=1,
                   measure_rss=spec["rss"])


STUDY = Study(NAME, "saved bytes and peak RSS vs T and width", grid, execute)

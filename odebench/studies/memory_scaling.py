"""Study ``memory_scaling``: bytes saved for backward and peak memory vs integration length and
vs MLP width — backprop against the adjoints and the peers.

Peak memory is the growth of a fresh subprocess's resident set above its import baseline
(``peak_rss_growth_bytes``; glibc's mmap threshold fixed so the RSS follows the live tensors)
and, on CUDA, ``peak_cuda_bytes``; ``saved_bytes`` cross-checks both. The full grid uses the
sizes at which the methods differ by far more than the few-MB noise (issue 13: MLP d16 w256
batch 256 rtol 1e-8, T 1 -> 10: backprop 57 -> 232 MB, backsolve 46 -> 46 MB): memory vs T is
the seed's O(1)-memory claim for the adjoints. The quick grid is CI-sized, without subprocesses.
"""

from __future__ import annotations

from odebench.results import Row
from odebench.studies.base import Settings, Study
from odebench.studies.common import available_backends, measure, point

NAME = "memory_scaling"
GRADIENTS = {"odebench": ("backprop", "backsolve", "backsolve+reanchor", "interpolated",
                          "checkpointed"),
             "torchdiffeq": ("backprop", "backsolve")}
# MLP field: state, batch, width, hidden layers (the width sweep varies the width)
QUICK = {"base": {"dim": 8, "batch": 32, "width": 64, "depth": 2}, "rtol": 1e-6,
         "T": (1.0, 10.0), "widths": (), "width_T": 1.0, "rss": False}
FULL = {"base": {"dim": 16, "batch": 256, "width": 256, "depth": 2}, "rtol": 1e-8,
        "T": (1.0, 2.0, 5.0, 10.0), "widths": (64, 512), "width_T": 2.0, "rss": True}


def grid(settings: Settings) -> list[Row]:
    spec = QUICK if settings.mode == "quick" else FULL
    base = spec["base"]
    configs = [{**base, "T": T} for T in spec["T"]]
    configs += [{**base, "width": w, "T": spec["width_T"]} for w in spec["widths"]
                if w != base["width"]]
    return [point(NAME, settings, "mlp", backend, "dopri5", gradient, rtol=spec["rtol"],
                  atol=spec["rtol"], problem_kwargs=kwargs, width=kwargs["width"],
                  batch=kwargs["batch"], state_dim=kwargs["dim"])
            for kwargs in configs for backend in available_backends(tuple(GRADIENTS))
            for gradient in GRADIENTS[backend]]


def execute(row: Row, settings: Settings) -> Row:
    spec = QUICK if settings.mode == "quick" else FULL
    return measure(row, settings, options={"max_num_steps": 50_000}, repeats=3,
                   measure_rss=spec["rss"], wall_budget_s=30.0)


STUDY = Study(NAME, "saved bytes and peak memory vs T and width", grid, execute)

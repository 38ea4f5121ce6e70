"""Gradient methods, one module each, one interface: ``solve(call, stats) -> ys``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from odebench.gradients import backprop, backsolve, checkpointed, forward, interpolated
from odebench.gradients.base import OdeCall
from odebench.solution import Stats

GRADIENTS: dict[str, Callable[[OdeCall, Stats], torch.Tensor]] = {
    "backprop": backprop.solve,
    "backsolve": backsolve.solve,
    "interpolated": interpolated.solve,
    "checkpointed": checkpointed.solve,
    "forward": forward.solve,
}

"""Backends: one interface (``methods``, ``gradients``, ``available``, ``solve(spec)``) over
odebench, SciPy, torchdiffeq and torchode, all measured by the same harness.

``get(name)`` returns a backend; ``solve(spec)`` returns a :class:`Measurement` and never raises
for a failed solve (it becomes a status row).
"""

from __future__ import annotations

from odebench.backends.base import Backend, ForwardResult, Measurement, RunSpec, TorchBackend
from odebench.backends.odebench_backend import OdebenchBackend
from odebench.backends.scipy_backend import ScipyBackend
from odebench.backends.torchdiffeq_backend import TorchdiffeqBackend
from odebench.backends.torchode_backend import TorchodeBackend
from odebench.errors import InvalidInputError

BACKENDS: tuple[str, ...] = ("odebench", "scipy", "torchdiffeq", "torchode")

_CLASSES: dict[str, type] = {
    "odebench": OdebenchBackend,
    "scipy": ScipyBackend,
    "torchdiffeq": TorchdiffeqBackend,
    "torchode": TorchodeBackend,
}


def get(name: str) -> Backend:
    """The backend called ``name`` (one of ``BACKENDS``); an unknown name raises
    ``InvalidInputError`` listing the valid ones. An uninstalled optional library does not
    raise here: ``available()`` says so and ``solve`` returns an "unsupported" row."""
    if name not in _CLASSES:
        raise InvalidInputError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    return _CLASSES[name]()


__all__ = ["BACKENDS", "Backend", "ForwardResult", "Measurement", "RunSpec", "TorchBackend", "get"]

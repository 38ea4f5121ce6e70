"""The problem registry: ``get(name, **kwargs)``, ``names(stiff=None)``, ``register``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from odebench.errors import InvalidInputError
from odebench.problems import neural, nonstiff, pde, stiff
from odebench.problems.base import Problem

Factory = Callable[..., Problem]

_FACTORIES: dict[str, Factory] = {**nonstiff.FACTORIES, **stiff.FACTORIES, **neural.FACTORIES,
                                  **pde.FACTORIES}
_STIFF: dict[str, bool] = {}


def register(name: str, factory: Factory) -> None:
    """Add (or replace) the problem ``name``; ``factory(**kwargs)`` must return a ``Problem``."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise InvalidInputError(f"factory for {name!r} must be callable, got {factory!r}")
    _FACTORIES[name] = factory
    _STIFF.pop(name, None)


def get(name: str, **kwargs: object) -> Problem:
    """A fresh float64 ``Problem`` named ``name``, varied by the factory's keyword arguments.

    Raises ``InvalidInputError`` for an unknown name (listing the valid ones) or an
    argument the factory does not take.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        valid = ", ".join(sorted(_FACTORIES))
        raise InvalidInputError(f"unknown problem {name!r}; valid names: {valid}")
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"bad keyword arguments for problem {name!r}: {exc}") from None
    problem = factory(**kwargs)
    if not isinstance(problem, Problem):
        raise InvalidInputError(f"factory of {name!r} returned {type(problem).__name__}, not Problem")
    return problem


def names(stiff: bool | None = None) -> list[str]:
    """Sorted registered names; only the stiff (``True``) or non-stiff (``False``) ones if given."""
    if stiff is None:
        return sorted(_FACTORIES)
    return sorted(name for name in _FACTORIES if _is_stiff(name) == stiff)


def _is_stiff(name: str) -> bool:
    if name not in _STIFF:
        _STIFF[name] = get(name).stiff
    return _STIFF[name]

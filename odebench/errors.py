"""Error types of odebench: each is also a subclass of the matching builtin."""

from __future__ import annotations

from typing import Any


class OdeBenchError(Exception):
    """Base class of every error odebench raises on purpose."""


class InvalidInputError(OdeBenchError, ValueError):
    """An argument is malformed: the message names the argument."""


class MaxStepsExceededError(OdeBenchError, RuntimeError):
    """The step budget ran out. ``partial`` holds what was computed up to then."""

    def __init__(self, message: str, partial: Any = None):
        super().__init__(message)
        self.partial = partial


class StepSizeUnderflowError(OdeBenchError, RuntimeError):
    """The step size became too small to make progress. ``partial`` holds the partial solution."""

    def __init__(self, message: str, partial: Any = None):
        super().__init__(message)
        self.partial = partial


class NonFiniteError(OdeBenchError, FloatingPointError):
    """A state, derivative or error estimate became NaN or infinite."""

    def __init__(self, message: str, partial: Any = None):
        super().__init__(message)
        self.partial = partial


class EventNotFoundError(OdeBenchError, RuntimeError):
    """``odeint_event``: ``event_fn`` did not change sign within the search horizon. ``t_reached``
    is the time searched up to."""

    def __init__(self, message: str, t_reached: float | None = None):
        super().__init__(message)
        self.t_reached = t_reached

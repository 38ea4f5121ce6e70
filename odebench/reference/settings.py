"""Default SciPy settings of the float64 references."""

from __future__ import annotations

from dataclasses import dataclass

from odebench.errors import InvalidInputError
from odebench.problems.base import Problem

NONSTIFF_METHOD = "DOP853"
NONSTIFF_RTOL = 1e-13
# Non-stiff atol = NONSTIFF_ATOL_FACTOR * problem.atol (1e-14 for the default atol 1e-12).
NONSTIFF_ATOL_FACTOR = 1e-2
STIFF_METHOD = "Radau"
STIFF_RTOL = 1e-12
SCIPY_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
IMPLICIT_METHODS = ("Radau", "BDF", "LSODA")


@dataclass(frozen=True)
class Settings:
    """One SciPy ``solve_ivp`` configuration: method name, rtol, scalar atol."""

    method: str
    rtol: float
    atol: float

    @property
    def implicit(self) -> bool:
        """Whether the method takes a Jacobian."""
        return self.method in IMPLICIT_METHODS


def resolve(
    problem: Problem, method: str | None, rtol: float | None, atol: float | None
) -> Settings:
    """Fill in defaults: DOP853 at rtol 1e-13 (non-stiff), Radau at rtol 1e-12 (stiff)."""
    if method is not None and method not in SCIPY_METHODS:
        raise InvalidInputError(f"method must be one of {SCIPY_METHODS}, got {method!r}")
    if problem.stiff:
        default = Settings(STIFF_METHOD, STIFF_RTOL, problem.atol)
    else:
        default = Settings(NONSTIFF_METHOD, NONSTIFF_RTOL, NONSTIFF_ATOL_FACTOR * problem.atol)
    settings = Settings(
        method=method or default.method,
        rtol=float(rtol) if rtol is not None else default.rtol,
        atol=float(atol) if atol is not None else default.atol,
    )
    if not (settings.rtol > 0 and settings.atol > 0):
        raise InvalidInputError(f"rtol and atol must be positive, got {settings}")
    return settings

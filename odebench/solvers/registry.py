"""Names of the methods odebench runs."""

from __future__ import annotations

from odebench.errors import InvalidInputError

FIXED_METHODS = ("euler", "midpoint", "rk4")
ADAPTIVE_METHODS = ("bosh3", "dopri5", "tsit5", "dop853")
EXPLICIT_METHODS = FIXED_METHODS + ADAPTIVE_METHODS
# Linearly implicit methods for stiff problems: the Rodas tableaus
# (odebench.solvers.rosenbrock_tableaus) and the ode23s triple (odebench.solvers.rosenbrock23).
STIFF_METHODS: tuple[str, ...] = ("rodas5p", "rodas4", "rosenbrock23")
# Algebraically reversible (odebench.solvers.reversible_heun): the ``reversible`` gradient's solver.
REVERSIBLE_METHODS: tuple[str, ...] = ("reversible_heun",)
METHODS = EXPLICIT_METHODS + STIFF_METHODS + REVERSIBLE_METHODS


def check_method(method: str) -> None:
    """Raise InvalidInputError listing the valid methods when ``method`` is unknown."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown method '{method}'; valid methods: {', '.join(METHODS)}")

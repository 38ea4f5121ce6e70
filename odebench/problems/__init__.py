"""Problems with known truth: ``get(name, **kwargs)``, ``names(stiff=None)``, ``register``."""

from odebench.problems.base import Problem, Reference
from odebench.problems.registry import get, names, register

__all__ = ["Problem", "Reference", "get", "names", "register"]

"""Float64 truth computed with SciPy: ``solution(problem)`` and ``gradient(problem, loss)``."""

from odebench.reference.differentiate import gradient
from odebench.reference.records import ReferenceGradient, ReferenceSolution
from odebench.reference.solve import solution

__all__ = ["ReferenceGradient", "ReferenceSolution", "gradient", "solution"]

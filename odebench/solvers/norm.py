"""The error norm of the step-size control: one scaled RMS norm, by parts.

``ratio = max over parts P of  s RMS_P( err / (atol + rtol * max(|y_n|, |y_n+1|)) )``

where ``err`` and ``s`` are the estimate and its scale from :meth:`Method.error`; accept the step
when ratio <= 1. A forward solve has one part, the whole state. An augmented backward system ``[y, a, dL/dp]``
may be measured by parts (the max of the per-part RMS norms, as torchdiffeq's adjoint does), and
a seminorm leaves parts out (Kidger, Chen & Lyons, ICML 2021): only the first ``n`` entries
reach the norm (:attr:`ErrorNorm.n`), the parts being consecutive slices of them. DOP853's
pair of estimates is combined per part (Hairer's formula on each part's entries), then the max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ErrorNorm:
    """Scaled RMS norm over the first ``n`` entries, split into the consecutive ``parts``
    (their lengths; None: one part of all ``n`` entries)."""

    rtol: float
    atol: float
    n: int
    parts: tuple[int, ...] | None = None

    def scale(self, ay: torch.Tensor, ay1: torch.Tensor) -> torch.Tensor:
        """``max(|y|, |y1|) + atol / rtol`` (the weights divided by rtol, one operation fewer;
        rtol is divided out on the host), shape [n]."""
        return torch.maximum(ay, ay1).add_(self.atol / self.rtol)

    def ratio(self, error: torch.Tensor, error_scale: float | None, ay: torch.Tensor,
              ay1: torch.Tensor) -> float:
        """The error ratio of a step; ``ay``, ``ay1`` are ``|y|``, ``|y1|`` in the first ``n``
        entries; ``error_scale`` None: ``error`` is an increment (scale 1). A two-column
        ``error`` is DOP853's pair of 5th- and 3rd-order estimates, combined as in Hairer's
        dop853.f (and SciPy's DOP853)."""
        if error.ndim == 2:
            scaled = error.div_(self.scale(ay, ay1).unsqueeze(1))
            pieces = [scaled] if self.parts is None else scaled.split(list(self.parts))
            return max(self._dop853(piece, error_scale) for piece in pieces)
        if error_scale is None:
            # increments (Rosenbrock stages): the weights as atol + rtol max(|y|, |y1|), the same
            # norm rounded as the code before the one loop did (the differential check holds
            # it bit for bit; the stiff adjoints amplify last-bit changes to 1e-11)
            scaled = error.div_(torch.maximum(ay, ay1).mul_(self.rtol).add_(self.atol))
            if self.parts is None:
                return float(torch.linalg.vector_norm(scaled)) / math.sqrt(self.n)
            factor = 1.0
        else:
            scaled = error.div_(self.scale(ay, ay1))
            if self.parts is None:
                return error_scale / (self.rtol * math.sqrt(self.n)) * float(
                    torch.linalg.vector_norm(scaled))
            factor = error_scale / self.rtol
        norms = torch.stack([torch.linalg.vector_norm(p) / math.sqrt(p.numel())
                             for p in scaled.split(list(self.parts))])
        return factor * float(norms.max())

    def _dop853(self, scaled: torch.Tensor, error_scale: float) -> float:
        """Hairer's combined norm of DOP853's scaled estimates ``scaled`` [k, 2] (one part of
        ``k`` entries): ``s e5^2 / (rtol sqrt(k (e5^2 + 0.01 e3^2)))``."""
        e5, e3 = (torch.linalg.vector_norm(scaled, dim=0) ** 2).tolist()
        if e5 == 0.0 and e3 == 0.0:
            return 0.0
        return error_scale * e5 / (self.rtol * math.sqrt((e5 + 0.01 * e3) * scaled.shape[0]))

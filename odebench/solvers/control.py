"""Step-size control: a PI controller and Hairer's initial step."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from odebench.solvers.func import FlatField


@dataclass
class PIController:
    """Proportional-integral step-size controller (Gustafsson 1991; Hairer & Wanner, Solving ODEs
    II, IV.2): ``h_new = h * safety * err^-(beta1) * err_prev^(beta2)``, limited to
    [min_factor, max_factor]; no growth right after a rejection.

    ``k`` is the order of the error estimate plus one.
    """

    k: int
    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    beta1_num: float = 0.7
    beta2_num: float = 0.4
    err_prev: float = 1.0
    rejected_last: bool = False

    def accept_factor(self, err: float) -> float:
        """Step-size factor after an accepted step with error ratio ``err`` (<= 1)."""
        if err == 0.0:
            factor = self.max_factor
        else:
            factor = (self.safety * err ** (-self.beta1_num / self.k)
                      * self.err_prev ** (self.beta2_num / self.k))
        factor = min(self.max_factor, max(self.min_factor, factor))
        if self.rejected_last:
            factor = min(1.0, factor)
        self.err_prev = max(err, 1e-4)
        self.rejected_last = False
        return factor

    def reject_factor(self, err: float) -> float:
        """Step-size factor after a rejected step (err > 1, or non-finite)."""
        self.rejected_last = True
        if not math.isfinite(err):
            return self.min_factor
        return max(self.min_factor, self.safety * err ** (-1.0 / self.k))


def initial_step(f: FlatField, t0: float, y0: torch.Tensor, f0: torch.Tensor, order: int,
                 rtol: float, atol: float, direction: float, interval: float,
                 norm_numel: int | None = None) -> float:
    """Hairer's automatic initial step (Hairer, Norsett, Wanner, Solving ODEs I, II.4): one extra
    evaluation of ``f``. Returns |h| (time units); ``order`` is that of the error estimate."""
    n = norm_numel if norm_numel is not None else y0.numel()
    whole = n == y0.numel()
    root_n = math.sqrt(max(n, 1))
    quiet = torch.no_grad() if torch.is_grad_enabled() else contextlib.nullcontext()
    with quiet:
        y, fy = (y0, f0) if whole else (y0[:n], f0[:n])
        # scale / rtol: |y| + atol / rtol (one operation fewer; rtol is divided out on the host)
        scale = y.abs().add_(atol / rtol)
        d0, d1 = (x / (rtol * root_n) for x in
                  torch.linalg.vector_norm(torch.stack([y, fy]).div_(scale), dim=1).tolist())
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, interval)
        f1 = f(t0 + direction * h0, torch.add(y0, f0, alpha=direction * h0))
        diff = torch.sub(f1 if whole else f1[:n], fy).div_(scale)
        d2 = float(torch.linalg.vector_norm(diff)) / (rtol * root_n * h0)
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100 * h0, h1, interval)

"""The odebench backend: ``odebench.solve`` with every method and gradient it offers."""

from __future__ import annotations

from typing import Any

import torch

import odebench
from odebench.api import RTOL_FLOOR_EPS
from odebench.backends.base import ERROR_NORM, ForwardResult, Measurement, RunSpec, TorchBackend
from odebench.solvers.registry import FIXED_METHODS

#: Gradient names this backend adds on top of ``odebench.GRADIENTS``: name -> (gradient, options).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "backsolve_seminorm": ("backsolve", {"seminorm": True}),
    "backsolve+reanchor": ("backsolve", {"reanchor": True}),
}


class OdebenchBackend(TorchBackend):
    """All of ``odebench.METHODS`` x ``odebench.GRADIENTS`` (read when asked, so methods added
    later appear), plus ``"backsolve_seminorm"`` = backsolve with ``options={"seminorm": True}``
    and ``"backsolve+reanchor"`` = backsolve with ``options={"reanchor": True}`` (the state reset
    to the stored forward solution at each output time, as torchdiffeq's and torchode's adjoints
    do; plain ``"backsolve"`` re-integrates the state from the end alone).
    """

    name = "odebench"

    def methods(self) -> list[str]:
        return list(odebench.METHODS)

    def gradients(self) -> list[str]:
        return [*odebench.GRADIENTS, *(a for a, (g, _) in ALIASES.items()
                                      if g in odebench.GRADIENTS)]

    def available(self) -> tuple[bool, str]:
        return True, f"odebench {odebench.__version__}"

    def notes(self, spec: RunSpec) -> dict[str, Any]:
        notes: dict[str, Any] = {}
        if spec.method in FIXED_METHODS:
            notes["step_size"] = spec.option("step_size", "output grid")
        else:
            notes.update(controller="PI (Gustafsson)", error_norm=ERROR_NORM)
        if spec.gradient in ALIASES:
            notes.update(ALIASES[spec.gradient][1])
        return notes

    def reanchors(self, spec: RunSpec) -> bool | None:
        """Backsolve re-anchors only with ``options={"reanchor": True}`` (or its alias)."""
        gradient, options = self._resolved(spec)
        return bool(options.get("reanchor", False)) if gradient == "backsolve" else None

    @staticmethod
    def _resolved(spec: RunSpec) -> tuple[str, dict[str, Any]]:
        """The ``odebench.solve`` gradient and options ``spec`` runs (aliases expanded)."""
        gradient, options = spec.gradient or "backprop", dict(spec.options or {})
        if gradient in ALIASES:
            gradient, extra_options = ALIASES[gradient]
            options.update(extra_options)
        return gradient, options

    def forward(self, spec: RunSpec, func: torch.nn.Module, y0: torch.Tensor, t: torch.Tensor,
                instrument: bool) -> ForwardResult:
        gradient, options = self._resolved(spec)
        tolerances = {k: v for k, v in (("rtol", spec.rtol), ("atol", spec.atol)) if v is not None}
        sol = odebench.solve(func, y0, t, method=spec.method, gradient=gradient,
                             options=options or None, **tolerances)
        stats = sol.stats

        def after_backward(out: Measurement) -> None:
            out.recon_error = stats.recon_error
            out.extra.update(library_nfe_backward=stats.nfe_backward,
                             steps_backward=stats.n_steps_backward,
                             rejected_backward=stats.n_rejected_backward,
                             n_jac_backward=stats.n_jac_backward,
                             n_lu_backward=stats.n_lu_backward)

        extra: dict[str, Any] = {"library_nfe": stats.nfe}
        floor = RTOL_FLOOR_EPS * torch.finfo(y0.dtype).eps
        if spec.rtol is not None and spec.rtol < floor:  # odebench.solve ran at its floor
            extra["rtol_effective"] = floor
        return ForwardResult(ys=sol.ys, steps=stats.n_steps, rejected=stats.n_rejected,
                             n_jac=stats.n_jac, n_lu=stats.n_lu, saved_bytes=stats.saved_bytes,
                             extra=extra, after_backward=after_backward)

"""Options of a solve: the keys ``options=`` accepts, with their defaults and checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from odebench.errors import InvalidInputError


@dataclass(frozen=True)
class SolverOptions:
    """Everything ``options={...}`` may set.

    Attributes:
        step_size: fixed step size (time units); required for euler/midpoint/rk4 unless the output
            grid itself is the step grid; with an adaptive method it switches error control off.
        max_num_steps: budget of attempted steps (accepted + rejected), per solve.
        first_step: initial step size; by default Hairer's automatic choice.
        max_step: upper bound on |h|.
        checkpoint_every: ``checkpointed`` gradient: keep the state of every k-th step.
        adjoint_rtol, adjoint_atol: tolerances of the backward (adjoint) solve; default the forward's.
        adjoint_method: the method of the backward solve; default the forward's.
        seminorm: ``backsolve``: leave the parameter-gradient channels out of the error norm
            (Kidger, Chen & Lyons, "Hey, that's not an ODE", ICML 2021).
        reanchor: ``backsolve``: replace the re-integrated state by the stored forward value at each
            output time (hides the drift; off by default so that it stays visible).
        max_num_steps_backward: step budget of the backward solve; default ``max_num_steps``.
        adjoint_norm: error norm of the adjoints' backward systems: "mixed" (default), one RMS
            norm over the whole augmented state; "per_part", the max of the RMS norms of its
            parts ([y, a, dL/dp] for backsolve, [a, dL/dp] for interpolated), as torchdiffeq's
            adjoint measures them (with ``seminorm`` the dL/dp part is left out either way).
        jac: stiff methods: ``jac(t, y) -> df/dy`` of the user's field (``t`` a 0-d tensor, ``y``
            of the state's shape; the result [N, N] or of shape ``(*y.shape, *y.shape)``, N =
            numel(y)), instead of the autograd Jacobian; df/dt by central differences in t (two
            evaluations of ``f`` per Jacobian, counted in nfe). Forward solves and the
            ``checkpointed`` replay use it; the adjoints' backward systems do not.
    """

    step_size: float | None = None
    max_num_steps: int = 100_000
    first_step: float | None = None
    max_step: float = math.inf
    checkpoint_every: int = 1
    adjoint_rtol: float | None = None
    adjoint_atol: float | None = None
    adjoint_method: str | None = None
    seminorm: bool = False
    reanchor: bool = False
    max_num_steps_backward: int | None = None
    adjoint_norm: str = "mixed"
    jac: Callable[[Any, Any], Any] | None = None

    @classmethod
    def parse(cls, options: dict[str, Any] | None) -> SolverOptions:
        """Validate a user's ``options`` dict; unknown keys and bad values raise InvalidInputError."""
        if options is None:
            return DEFAULTS
        if not isinstance(options, dict):
            raise InvalidInputError(f"options must be a dict, got {type(options).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise InvalidInputError(
                f"unknown option(s) {unknown} in options; valid keys: {', '.join(valid)}"
            )
        opts = cls(**options)
        for name in ("step_size", "first_step", "max_step", "adjoint_rtol", "adjoint_atol"):
            value = getattr(opts, name)
            if value is not None and not (float(value) > 0 and not math.isnan(float(value))):
                raise InvalidInputError(f"options['{name}'] must be > 0, got {value}")
        for name in ("max_num_steps", "checkpoint_every", "max_num_steps_backward"):
            value = getattr(opts, name)
            if value is not None and (int(value) != value or value < 1):
                raise InvalidInputError(f"options['{name}'] must be a positive integer, got {value}")
        if opts.adjoint_norm not in ("mixed", "per_part"):
            raise InvalidInputError(
                f"options['adjoint_norm'] must be 'mixed' or 'per_part', got {opts.adjoint_norm!r}")
        if opts.jac is not None and not callable(opts.jac):
            raise InvalidInputError(
                f"options['jac'] must be callable jac(t, y) -> df/dy, got {type(opts.jac).__name__}")
        return opts


DEFAULTS = SolverOptions()
"""The options of a solve without ``options=`` (frozen, so shared)."""

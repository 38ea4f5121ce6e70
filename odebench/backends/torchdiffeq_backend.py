"""The torchdiffeq backend: ``odeint`` (backprop) and ``odeint_adjoint`` (backsolve).

Method names are odebench's where torchdiffeq has the same scheme, torchdiffeq's otherwise;
``METHODS`` maps each to torchdiffeq's name, the one place it does (rows carry it as
``peer_method``). Steps are counted with torchdiffeq's documented
step callbacks (``callback_step``, ``callback_accept_step``, ``callback_reject_step`` and their
``_adjoint`` twins on the vector field) in the instrumented run only.
"""

from __future__ import annotations

from typing import Any

import torch

from odebench.backends.base import (
    ERROR_NORM,
    ForwardResult,
    Measurement,
    RunSpec,
    TorchBackend,
    status_of,
)

#: Our method name -> torchdiffeq's.
METHODS: dict[str, str] = {
    "euler": "euler",
    "midpoint": "midpoint",
    "rk4": "rk4",
    "bosh3": "bosh3",
    "dopri5": "dopri5",
    "dop853": "dopri8",
    "fehlberg2": "fehlberg2",
    "adaptive_heun": "adaptive_heun",
    "explicit_adams": "explicit_adams",
    "implicit_adams": "implicit_adams",
}
#: torchdiffeq methods with error control (the others step on a fixed grid).
ADAPTIVE = ("bosh3", "dopri5", "dopri8", "fehlberg2", "adaptive_heun")
#: Where a name maps to a different scheme than odebench's.
SCHEME_NOTES: dict[str, str] = {
    "dop853": "torchdiffeq's dopri8 is the Dormand-Prince 8(7) pair (Prince & Dormand 1981), "
              "not Hairer's DOP853 8(5,3): same order, different coefficients and error estimate",
    "rk4": "torchdiffeq's rk4 is Kutta's 3/8 rule, not the classical RK4",
}
#: Gradient name -> (odeint_adjoint?, seminorm?).
GRADIENTS: dict[str, tuple[bool, bool]] = {
    "backprop": (False, False),
    "backsolve": (True, False),
    "backsolve_seminorm": (True, True),
}
#: Substrings of torchdiffeq's AssertionError messages -> status.
ASSERTION_STATUS: dict[str, str] = {
    "max_num_steps exceeded": "max_steps",
    "underflow in dt": "step_underflow",
    "non-finite values": "nonfinite",
}


class _Steps:
    """Step counts of one pass."""

    def __init__(self) -> None:
        self.attempted = 0
        self.accepted = 0
        self.rejected = 0


class _FixedStepCounter(torch.nn.Module):
    """``func`` with torchdiffeq's ``callback_step`` hooks (fixed-grid solvers know no others)."""

    def __init__(self, func: torch.nn.Module):
        super().__init__()
        self.func = func
        self.fwd, self.bwd = _Steps(), _Steps()

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.func(t, y)

    def callback_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.fwd.attempted += 1

    def callback_step_adjoint(self, t0: Any, y0: Any, dt: Any) -> None:
        self.bwd.attempted += 1

    def steps(self, bwd: bool) -> tuple[int, int]:
        """(accepted, rejected) of the forward or backward pass."""
        s = self.bwd if bwd else self.fwd
        return s.attempted, 0


class _AdaptiveStepCounter(_FixedStepCounter):
    """Adds the accept/reject hooks of torchdiffeq's adaptive solvers."""

    def callback_accept_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.fwd.accepted += 1

    def callback_reject_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.fwd.rejected += 1

    def callback_accept_step_adjoint(self, t0: Any, y0: Any, dt: Any) -> None:
        self.bwd.accepted += 1

    def callback_reject_step_adjoint(self, t0: Any, y0: Any, dt: Any) -> None:
        self.bwd.rejected += 1

    def steps(self, bwd: bool) -> tuple[int, int]:
        s = self.bwd if bwd else self.fwd
        return s.accepted, s.rejected


class TorchdiffeqBackend(TorchBackend):
    """torchdiffeq's ``odeint`` / ``odeint_adjoint`` (``adjoint_params`` = the field's
    parameters; ``backsolve_seminorm`` adds ``adjoint_options={"norm": "seminorm"}``).

    ``options`` are passed to torchdiffeq as they are (its ``max_num_steps`` counts the steps of
    each output interval separately, odebench's those of the whole solve).
    """

    name = "torchdiffeq"

    def methods(self) -> list[str]:
        return list(METHODS)

    def gradients(self) -> list[str]:
        return list(GRADIENTS)

    def available(self) -> tuple[bool, str]:
        import torchdiffeq

        return True, f"torchdiffeq {torchdiffeq.__version__}"

    def peer_method(self, spec: RunSpec) -> str:
        return METHODS.get(spec.method, spec.method)

    def reanchors(self, spec: RunSpec) -> bool | None:
        """torchdiffeq's adjoint resets the state to the forward solution at each output time."""
        if spec.gradient is None or not GRADIENTS[spec.gradient][0]:
            return None
        return True

    def notes(self, spec: RunSpec) -> dict[str, Any]:
        notes: dict[str, Any] = {}
        if self.peer_method(spec) in ADAPTIVE:
            notes.update(controller="integral (I)", error_norm=ERROR_NORM)
        else:
            notes["step_size"] = spec.option("step_size", "output grid")
        if spec.method in SCHEME_NOTES:
            notes["scheme_note"] = SCHEME_NOTES[spec.method]
        if spec.gradient is not None and GRADIENTS[spec.gradient][0]:
            notes["adjoint_note"] = ("torchdiffeq's adjoint resets the state to the forward "
                                     "solution at each output time")
            notes["seminorm"] = GRADIENTS[spec.gradient][1]
        return notes

    def status_of(self, exc: BaseException) -> str:
        if isinstance(exc, AssertionError):
            text = str(exc)
            for needle, status in ASSERTION_STATUS.items():
                if needle in text:
                    return status
        return status_of(exc)

    def forward(self, spec: RunSpec, func: torch.nn.Module, y0: torch.Tensor, t: torch.Tensor,
                instrument: bool) -> ForwardResult:
        from torchdiffeq import odeint, odeint_adjoint

        method = self.peer_method(spec)
        counter: _FixedStepCounter | None = None
        if instrument:
            counter = (_AdaptiveStepCounter if method in ADAPTIVE else _FixedStepCounter)(func)
            func = counter
        kwargs: dict[str, Any] = {"method": method, "options": spec.options}
        kwargs.update({k: v for k, v in (("rtol", spec.rtol), ("atol", spec.atol))
                       if v is not None})
        adjoint, seminorm = GRADIENTS[spec.gradient or "backprop"]
        if adjoint:
            if seminorm:
                options = {k: v for k, v in (spec.options or {}).items() if k != "norm"}
                kwargs["adjoint_options"] = {**options, "norm": "seminorm"}
            ys = odeint_adjoint(func, y0, t, adjoint_params=tuple(func.parameters()), **kwargs)
        else:
            ys = odeint(func, y0, t, **kwargs)
        if counter is None:
            return ForwardResult(ys=ys)
        steps, rejected = counter.steps(bwd=False)

        def after_backward(out: Measurement) -> None:
            if adjoint:
                out.extra["steps_backward"], out.extra["rejected_backward"] = counter.steps(True)

        return ForwardResult(ys=ys, steps=steps, rejected=rejected, after_backward=after_backward)

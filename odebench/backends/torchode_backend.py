"""The torchode backend (optional): ``AutoDiffAdjoint`` (backprop) and ``BacksolveAdjoint``.

torchode solves batches ``[batch, features]``; the problem's whole state is flattened into one
batch row, and the vector field sees it reshaped back (under ``BacksolveAdjoint``'s ``vmap`` it
sees one row without the batch axis, reshaped the same way). Step control is torchode's
``IntegralController`` with the run's rtol/atol (the same mixed RMS error norm as the other
backends; the controllers differ: integral here and in torchdiffeq, PI in odebench).
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
)
from odebench.errors import (
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)

#: Gradient name -> torchode adjoint class name.
GRADIENTS: dict[str, str] = {"backprop": "AutoDiffAdjoint", "backsolve": "BacksolveAdjoint"}
#: Our option names -> torchode's (``max_num_steps`` caps attempted steps of the whole solve).
OPTIONS: dict[str, str] = {"max_num_steps": "max_steps", "first_step": "dt0"}
#: torchode status codes (``torchode.status_codes``) -> the error a failed solve raises.
STATUS_ERRORS: dict[int, type[Exception]] = {
    1: RuntimeError,  # GENERAL_ERROR
    2: StepSizeUnderflowError,  # REACHED_DT_MIN
    3: MaxStepsExceededError,  # REACHED_MAX_STEPS
    4: NonFiniteError,  # INFINITE_NORM
}
#: Default tolerances when a spec leaves them unset (torchode's own ``solve_ivp`` defaults).
DEFAULT_RTOL = DEFAULT_ATOL = 1e-7


class _Flattened(torch.nn.Module):
    """``func`` on torchode's rows: ``t`` [batch] or [], ``y`` [1, n] or [n] -> same shape."""

    def __init__(self, func: torch.nn.Module, shape: torch.Size):
        super().__init__()
        self.func = func
        self.shape = shape

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.func(t.reshape(()), y.reshape(self.shape)).reshape(y.shape)


def _check_status(status: torch.Tensor, sol_stats: dict[str, Any]) -> None:
    code = int(status.max())
    if code != 0:
        error = STATUS_ERRORS.get(code, RuntimeError)
        raise error(f"torchode stopped with status {code} after "
                    f"{int(sol_stats['n_steps'].sum())} attempted steps")


class TorchodeBackend(TorchBackend):
    """torchode's registered methods (``dopri5``, ``tsit5``, ``heun`` in 1.0.1) with
    ``AutoDiffAdjoint`` ("backprop") or ``BacksolveAdjoint`` ("backsolve"; it resets the state
    to the forward solution at each output time). ``JointBacksolveAdjoint`` is the same for a
    single row, so it is not offered.
    """

    name = "torchode"

    def methods(self) -> list[str]:
        try:
            from torchode.interface import METHODS
        except ImportError:
            return []
        return sorted(METHODS)

    def gradients(self) -> list[str]:
        return list(GRADIENTS)

    def available(self) -> tuple[bool, str]:
        try:
            import torchode
        except ImportError:
            return False, "torchode is not installed (pip install torchode)"
        return True, f"torchode {torchode.__version__}"

    def unsupported(self, spec: RunSpec) -> str | None:
        unknown = sorted(set(spec.options or {}) - set(OPTIONS))
        if unknown:
            return f"options {unknown} are not understood; torchode takes {sorted(OPTIONS)}"
        return super().unsupported(spec)

    def notes(self, spec: RunSpec) -> dict[str, Any]:
        notes: dict[str, Any] = {"controller": "integral (I)", "error_norm": ERROR_NORM}
        if spec.gradient is not None:
            notes["library_adjoint"] = GRADIENTS[spec.gradient]
        if spec.gradient == "backsolve":
            notes["adjoint_note"] = ("torchode's BacksolveAdjoint resets the state to the "
                                     "forward solution at each output time")
        return notes

    def reanchors(self, spec: RunSpec) -> bool | None:
        """torchode's BacksolveAdjoint resets the state at each output time."""
        return True if spec.gradient == "backsolve" else None

    def forward(self, spec: RunSpec, func: torch.nn.Module, y0: torch.Tensor, t: torch.Tensor,
                instrument: bool) -> ForwardResult:
        import torchode

        term = torchode.ODETerm(_Flattened(func, y0.shape), with_stats=instrument)
        step = torchode.interface.METHODS[spec.method](term=term)
        controller = torchode.IntegralController(
            atol=spec.atol if spec.atol is not None else DEFAULT_ATOL,
            rtol=spec.rtol if spec.rtol is not None else DEFAULT_RTOL, term=term,
        ).to(device=y0.device, dtype=torch.float64)
        max_steps = spec.option("max_num_steps")
        dt0 = spec.option("first_step")
        if dt0 is not None:
            dt0 = torch.full((1,), float(dt0), dtype=t.dtype, device=t.device)
        if spec.gradient == "backsolve":
            solver = torchode.BacksolveAdjoint(term, step, controller)
            solver.forward_adjoint.max_steps = max_steps
            solver.backward_adjoint.max_steps = max_steps
        else:
            solver = torchode.AutoDiffAdjoint(step, controller, max_steps=max_steps)
        problem = torchode.InitialValueProblem(y0=y0.reshape(1, -1), t_start=t[:1],
                                               t_end=t[-1:], t_eval=t[None])
        sol = solver.solve(problem, dt0=dt0)
        _check_status(sol.status, sol.stats)
        ys = sol.ys[0].reshape(len(t), *y0.shape)
        if not instrument:
            return ForwardResult(ys=ys)
        stats = sol.stats
        attempted, accepted = int(stats["n_steps"].sum()), int(stats["n_accepted"].sum())

        def after_backward(out: Measurement) -> None:
            parts = stats.get("backsolve", [])
            if parts:
                out.extra["steps_backward"] = sum(int(p["n_accepted"].sum()) for p in parts)
                out.extra["rejected_backward"] = sum(
                    int((p["n_steps"] - p["n_accepted"]).sum()) for p in parts)

        return ForwardResult(ys=ys, steps=accepted, rejected=attempted - accepted,
                             extra={"library_nfe": int(stats["n_f_evals"].sum())},
                             after_backward=after_backward)

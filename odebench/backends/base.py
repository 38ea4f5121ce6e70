"""One interface for every backend, and the one harness that measures the torch backends.

A backend turns a :class:`RunSpec` into a :class:`Measurement`. The torch backends implement
only :meth:`TorchBackend.forward` (one solve); :func:`measure` does everything else the same way
for all of them:

1. the float64 truth: ``reference.solution(problem)`` and, for a gradient run,
   ``reference.gradient(problem)`` (the gradient of ``problem.loss`` w.r.t. ``(y0, p)``);
2. one *instrumented* run: the vector field wrapped in a :class:`~odebench.measure.CountingField`
   (NFE of the forward and backward pass), the forward pass inside a
   :class:`~odebench.measure.SavedTensorMeter` (bytes autograd saves), then ``loss.backward()``;
   its solution and gradient give the errors;
3. ``spec.repeats`` *timed* runs with the bare vector field (no counting, no hooks, no extra
   wrappers), after the instrumented run as warm-up: medians of the forward and the backward
   wall clock, torch threads pinned, CUDA synchronised;
4. optionally the peak RSS of the same run in a fresh subprocess.

A failure never raises: it becomes a status row (``max_steps``, ``nonfinite``,
``step_underflow`` or ``error``) with the message and whatever was counted before it.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from odebench import reference
from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)
from odebench.measure import (
    CountingField,
    CudaPeakMeter,
    SavedTensorMeter,
    median_iqr,
    peak_rss_subprocess,
    pinned_threads,
    relative_error_series,
    relative_l2,
    scd,
    timed,
)
from odebench.problems.base import Problem
from odebench.solution import PartialSolution

DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}
#: Seconds a peak-RSS subprocess may run.
RSS_TIMEOUT_S = 600.0
#: The error norm every adaptive backend here uses, for ``Measurement.extra``.
ERROR_NORM = "rms(err / (atol + rtol * max(|y_n|, |y_n+1|)))"

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class RunSpec:
    """One run.

    Attributes:
        problem: the float64 problem from the registry; the backend converts dtype and device.
        method: a name from the backend's ``methods()``.
        rtol, atol: tolerances; ``None`` leaves the library's default (fixed-step methods
            ignore them).
        gradient: a name from the backend's ``gradients()``; ``None`` for a forward solve only.
        options: backend options (``max_num_steps`` is understood by every backend).
        dtype: "float64" or "float32".
        device: "cpu", "cuda", "cuda:0", ...
        repeats: timed runs (median) after the instrumented one; 0 times nothing.
        threads: torch threads during the run.
        measure_rss: also measure the peak RSS in a fresh subprocess (slow: ~4 s each).
        wall_budget_s: stop the timed repeats once a run took longer than this (seconds); when
            the instrumented run already did, its own times are reported instead.
        problem_kwargs: the registry arguments that rebuild ``problem``
            (``problems.get(problem.name, **problem_kwargs)``) in the RSS subprocess.
    """

    problem: Problem
    method: str
    rtol: float | None = None
    atol: float | None = None
    gradient: str | None = None
    options: dict[str, Any] | None = None
    dtype: str = "float64"
    device: str = "cpu"
    repeats: int = 3
    threads: int = 1
    measure_rss: bool = False
    wall_budget_s: float | None = None
    problem_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if not (isinstance(self.repeats, int) and self.repeats >= 0):
            raise InvalidInputError(f"repeats must be an integer >= 0, got {self.repeats!r}")
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise InvalidInputError(f"threads must be an integer >= 1, got {self.threads!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def on_cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"

    def option(self, name: str, default: Any = None) -> Any:
        """``options[name]``, or ``default`` when unset."""
        return (self.options or {}).get(name, default)


@dataclass
class Measurement:
    """What a run measured; the field names are the measurement columns of ``results.Row``.

    Errors are relative L2 against the float64 truth (dimensionless; ``sol_error`` at the final
    time, ``sol_error_series`` at each output time, ``grad_error`` of the concatenated
    ``(dL/dy0, dL/dp)``); ``scd`` are significant correct digits at the final time; walls are
    median seconds over ``n_repeats`` timed runs, with their interquartile ranges
    (``*_iqr_s``, ``None`` below two repeats); ``saved_bytes`` are bytes autograd saved during
    the forward pass plus those the method keeps itself; ``peak_rss_bytes`` the peak resident
    set of a fresh process and ``peak_rss_growth_bytes`` its growth above that process's
    import-and-setup baseline (``extra`` also holds the baseline); ``peak_cuda_bytes`` the most
    CUDA memory the instrumented run allocated above what was allocated when it started.
    ``peer_method`` is the name the library that ran gave the method (torchdiffeq's "dopri8"
    for odebench's "dop853"); ``reanchor`` whether the adjoint resets its state to the stored
    forward solution at each output time (``None``: not an adjoint).
    ``None``: not measured or not applicable.
    """

    sol_error: float | None = None
    sol_error_series: list[float] | None = None
    scd: float | None = None
    grad_error: float | None = None
    nfe_forward: int | None = None
    nfe_backward: int | None = None
    steps: int | None = None
    rejected: int | None = None
    wall_forward_s: float | None = None
    wall_backward_s: float | None = None
    n_repeats: int | None = None
    wall_forward_iqr_s: float | None = None
    wall_backward_iqr_s: float | None = None
    saved_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_rss_growth_bytes: int | None = None
    peak_cuda_bytes: int | None = None
    peer_method: str | None = None
    reanchor: bool | None = None
    n_jac: int | None = None
    n_lu: int | None = None
    recon_error: float | None = None
    status: str = "ok"
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """Field -> value, ready for ``results.Row(**spec_columns, **m.columns())``."""
        return dataclasses.asdict(self)

    def fail(self, status: str, message: str) -> Measurement:
        """Mark the run stopped; returns ``self``."""
        self.status, self.message = status, message
        return self


class Backend(Protocol):
    """What a backend offers: its names, whether it can run here, and one measured run."""

    name: str

    def methods(self) -> list[str]:
        """Method names ``RunSpec.method`` may take."""

    def gradients(self) -> list[str]:
        """Gradient names ``RunSpec.gradient`` may take (empty: forward only)."""

    def peer_method(self, spec: RunSpec) -> str:
        """The library's own name of the method ``spec`` runs (the one place names map)."""

    def reanchors(self, spec: RunSpec) -> bool | None:
        """Whether ``spec``'s adjoint resets its state to the forward solution at each output
        time; ``None`` for a run without an adjoint."""

    def available(self) -> tuple[bool, str]:
        """``(True, "library version")``, or ``(False, why not)``."""

    def solve(self, spec: RunSpec) -> Measurement:
        """Measure one run; a failed solve is a status row, never an exception."""

    def run_once(self, spec: RunSpec) -> None:
        """One bare forward (and backward) pass, nothing measured; raises on failure."""

    def status_of(self, exc: BaseException) -> str:
        """The results status of a run stopped by ``exc``."""


def status_of(exc: BaseException) -> str:
    """The status of a run stopped by ``exc``: odebench's typed errors, else "error"."""
    if isinstance(exc, MaxStepsExceededError):
        return "max_steps"
    if isinstance(exc, StepSizeUnderflowError):
        return "step_underflow"
    if isinstance(exc, (NonFiniteError, FloatingPointError)):
        return "nonfinite"
    return "error"


def describe(exc: BaseException) -> str:
    """``"Type: message"`` on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@dataclass
class ForwardResult:
    """One forward solve, as a backend returns it.

    Attributes:
        ys: states at the output times, ``[len(t), *y0.shape]`` (differentiable for a gradient
            run).
        steps, rejected: accepted / rejected steps of the forward pass, if the library tells.
        n_jac, n_lu: Jacobian evaluations and LU factorisations, if any.
        saved_bytes: bytes the method keeps for backward outside autograd.
        extra: library-specific facts for ``Measurement.extra``.
        after_backward: called with the measurement after the backward pass, to copy what the
            library counted during it (backward steps, reconstruction error, ...).
    """

    ys: torch.Tensor
    steps: int | None = None
    rejected: int | None = None
    n_jac: int | None = None
    n_lu: int | None = None
    saved_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    after_backward: Callable[[Measurement], None] | None = None


@dataclass
class Truth:
    """The float64 truth of a run: ``ys`` ``[T, *shape]``; ``grad`` = ``(dL/dy0, dL/dp)`` flat."""

    ys: np.ndarray
    grad: np.ndarray | None
    n_y0: int

    @classmethod
    def of(cls, spec: RunSpec) -> Truth:
        ys = np.asarray(reference.solution(spec.problem).ys, dtype=np.float64)
        grad = None
        if spec.gradient is not None:
            ref = reference.gradient(spec.problem)
            grad = np.concatenate([np.ravel(ref.dy0), np.ravel(ref.dp)]).astype(np.float64)
        return cls(ys=ys, grad=grad, n_y0=int(spec.problem.y0.numel()))


def fill_solution_errors(out: Measurement, ys: np.ndarray, truth: Truth, floor: float) -> None:
    """Set ``sol_error``, ``sol_error_series`` and ``scd`` of ``ys`` ``[T, *shape]``.

    Raises ``NonFiniteError`` when ``ys`` holds NaN or infinities (after recording the errors).
    """
    out.sol_error = relative_l2(ys[-1], truth.ys[-1])
    out.sol_error_series = relative_error_series(ys, truth.ys)
    out.scd = scd(ys[-1], truth.ys[-1], floor)
    if not np.all(np.isfinite(ys)):
        raise NonFiniteError("the solution contains NaN or infinite values")


def fill_gradient_errors(out: Measurement, grad: np.ndarray, truth: Truth) -> None:
    """Set ``grad_error`` (and, in ``extra``, the errors of the y0 and p parts).

    Raises ``NonFiniteError`` for a NaN or infinite gradient (after recording the errors).
    """
    assert truth.grad is not None
    n = truth.n_y0
    out.grad_error = relative_l2(grad, truth.grad)
    out.extra["grad_error_y0"] = relative_l2(grad[:n], truth.grad[:n])
    out.extra["grad_error_p"] = relative_l2(grad[n:], truth.grad[n:])
    if not np.all(np.isfinite(grad)):
        raise NonFiniteError("the gradient contains NaN or infinite values")


def problem_fingerprint(problem: Problem) -> str:
    """SHA-256 of a problem's name, ``y0``, ``p`` and ``t_eval`` (as float64 bytes)."""
    h = hashlib.sha256(problem.name.encode())
    for x in (problem.y0, problem.p, problem.t_eval):
        h.update(x.detach().to(dtype=torch.float64, device="cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def probe_spec(backend: str, spec: RunSpec) -> dict[str, Any]:
    """The JSON form of ``spec`` that ``odebench.measure.rss_probe`` runs."""
    return {
        "backend": backend, "problem": spec.problem.name,
        "problem_kwargs": spec.problem_kwargs or {},
        "fingerprint": problem_fingerprint(spec.problem),
        "method": spec.method, "rtol": spec.rtol, "atol": spec.atol, "gradient": spec.gradient,
        "options": spec.options, "dtype": spec.dtype, "device": spec.device,
        "threads": spec.threads,
    }


def describe_run(backend: Backend, spec: RunSpec, out: Measurement) -> None:
    """Set what says which algorithm ran: ``peer_method``, ``reanchor`` and the notes."""
    out.peer_method = backend.peer_method(spec)
    out.reanchor = backend.reanchors(spec)
    out.extra.update(backend.notes(spec))


def measure_rss(backend: str, spec: RunSpec, out: Measurement) -> None:
    """Fill ``peak_rss_bytes`` and ``peak_rss_growth_bytes`` (the baseline in ``extra``) from a
    fresh subprocess."""
    try:
        rss = peak_rss_subprocess(probe_spec(backend, spec), timeout_s=RSS_TIMEOUT_S)
    except (RuntimeError, ValueError, TypeError, subprocess.TimeoutExpired) as exc:
        out.extra["rss_error"] = describe(exc)
        return
    out.peak_rss_bytes = rss.peak_bytes
    out.peak_rss_growth_bytes = rss.increment_bytes
    out.extra["rss_baseline_bytes"] = rss.baseline_bytes
    out.extra["rss_nograd_growth_bytes"] = rss.nograd_increment_bytes
    if rss.peak_cuda_bytes is not None:
        out.extra["rss_probe_cuda_bytes"] = rss.peak_cuda_bytes
    if rss.status != "ok":
        out.extra["rss_status"] = f"{rss.status}: {rss.message}"


def _grad_of(y0: torch.Tensor, func: torch.nn.Module) -> np.ndarray:
    """The concatenated ``(y0.grad, p.grad)`` of a run, float64 numpy (zeros where None)."""
    parts = [y0] + list(func.parameters())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parts]
    return torch.cat([g.detach().reshape(-1).to("cpu", torch.float64) for g in grads]).numpy()


class TorchBackend:
    """Base of the backends that solve in torch; subclasses implement :meth:`forward`."""

    name = ""

    def methods(self) -> list[str]:
        raise NotImplementedError

    def gradients(self) -> list[str]:
        raise NotImplementedError

    def available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def forward(self, spec: RunSpec, func: torch.nn.Module, y0: torch.Tensor, t: torch.Tensor,
                instrument: bool) -> ForwardResult:
        """Solve ``d y/dt = func(t, y)`` from ``y0`` at the times ``t`` as ``spec`` says.

        ``instrument``: this is the measured run, so library-side counters may be attached;
        ``False`` for the timed runs, which must do nothing but solve.
        """
        raise NotImplementedError

    def notes(self, spec: RunSpec) -> dict[str, Any]:
        """Facts about how this backend runs ``spec`` (controller, caveats), for
        ``Measurement.extra``; present on every row, failed ones included."""
        return {}

    def peer_method(self, spec: RunSpec) -> str:
        """The library's name of ``spec.method``: the same name unless a subclass maps it."""
        return spec.method

    def reanchors(self, spec: RunSpec) -> bool | None:
        """No adjoint re-anchors unless a subclass says so."""
        return None

    def status_of(self, exc: BaseException) -> str:
        """The status of a run stopped by ``exc`` (libraries add their own failure types)."""
        return status_of(exc)

    def unsupported(self, spec: RunSpec) -> str | None:
        """Why this backend cannot run ``spec`` here, or ``None``."""
        ok, why = self.available()
        if not ok:
            return why
        if spec.method not in self.methods():
            return f"method {spec.method!r} is not one of {self.methods()}"
        if spec.gradient is not None and spec.gradient not in self.gradients():
            return f"gradient {spec.gradient!r} is not one of {self.gradients()}"
        if spec.on_cuda and not torch.cuda.is_available():
            return "CUDA is not available"
        return None

    def solve(self, spec: RunSpec) -> Measurement:
        """Measure ``spec`` (see :func:`measure`)."""
        return measure(self, spec)

    def run_once(self, spec: RunSpec) -> None:
        """One bare forward (and backward) pass, nothing measured; raises on failure."""
        reason = self.unsupported(spec)
        if reason is not None:
            raise InvalidInputError(f"unsupported: {reason}")
        problem = spec.problem.to(dtype=spec.torch_dtype, device=spec.device)
        with pinned_threads(spec.threads):
            _bare_run(self, spec, problem)


def measure(backend: TorchBackend, spec: RunSpec) -> Measurement:
    """Measure one run of a torch backend; never raises for a failed solve (see module doc)."""
    out = Measurement()
    reason = backend.unsupported(spec)
    if reason is not None:
        return out.fail("error", f"unsupported: {reason}")
    describe_run(backend, spec, out)
    try:
        truth = Truth.of(spec)
    except Exception as exc:  # a failed reference is reported, not raised
        return out.fail("error", f"reference failed: {describe(exc)}")
    problem = spec.problem.to(dtype=spec.torch_dtype, device=spec.device)
    counted = CountingField(problem.func())
    with pinned_threads(spec.threads):
        try:
            walls = _instrumented_run(backend, spec, problem, counted, truth, out)
            time_repeats(lambda: _bare_run(backend, spec, problem), spec, walls, out)
        except Exception as exc:  # every failure of a solve becomes a status row
            out.fail(backend.status_of(exc), describe(exc))
            _record_reach(out, exc)
        finally:
            out.nfe_forward = counted.nfe_forward
            out.nfe_backward = counted.nfe_backward if spec.gradient is not None else None
    if spec.measure_rss:
        measure_rss(backend.name, spec, out)
    return out


def _instrumented_run(backend: TorchBackend, spec: RunSpec, problem: Problem,
                      counted: CountingField, truth: Truth, out: Measurement
                      ) -> tuple[float, float | None]:
    """The counted, metered run: fills errors, counts and bytes (on CUDA also the peak
    allocated above the start, also when it fails); returns its (fwd, bwd) walls."""
    cuda = CudaPeakMeter(spec.device if spec.on_cuda else None)
    try:
        with cuda:
            return _metered_passes(backend, spec, problem, counted, truth, out)
    finally:
        out.peak_cuda_bytes = cuda.peak_bytes


def _metered_passes(backend: TorchBackend, spec: RunSpec, problem: Problem,
                    counted: CountingField, truth: Truth, out: Measurement
                    ) -> tuple[float, float | None]:
    grad = spec.gradient is not None
    y0 = problem.y0.detach().clone().requires_grad_(grad)
    with SavedTensorMeter() as meter, torch.set_grad_enabled(grad):
        fwd, wall_fwd = timed(lambda: backend.forward(spec, counted, y0, problem.t_eval, True),
                              spec.on_cuda)
    out.steps, out.rejected = fwd.steps, fwd.rejected
    out.n_jac, out.n_lu = fwd.n_jac, fwd.n_lu
    out.extra.update(fwd.extra)
    ys = fwd.ys.detach().to("cpu", torch.float64).numpy()
    fill_solution_errors(out, ys, truth, spec.problem.atol)
    if not grad:
        return wall_fwd, None
    out.saved_bytes = meter.bytes + fwd.saved_bytes
    out.extra["autograd_saved_bytes"] = meter.bytes
    loss = problem.loss(fwd.ys)
    with counted.phase("backward"):
        _, wall_bwd = timed(loss.backward, spec.on_cuda)
    if fwd.after_backward is not None:
        fwd.after_backward(out)
    fill_gradient_errors(out, _grad_of(y0, counted), truth)
    return wall_fwd, wall_bwd


def _record_reach(out: Measurement, exc: BaseException) -> None:
    """Where a stopped odebench solve got to, from the partial solution its error carries:
    ``extra`` gains ``t_reached`` and ``steps_reached`` (accepted steps)."""
    partial = getattr(exc, "partial", None)
    if isinstance(partial, PartialSolution):
        out.extra.update(t_reached=partial.t_reached, steps_reached=partial.stats.n_steps)


def bare_forward_seconds(backend: TorchBackend, spec: RunSpec, problem: Problem) -> float:
    """Seconds of one bare forward solve of ``problem`` (already in the spec's dtype and device)
    by ``backend``: the vector field not instrumented, nothing measured but the wall clock."""
    return _bare_run(backend, dataclasses.replace(spec, gradient=None), problem)[0]


def _bare_run(backend: TorchBackend, spec: RunSpec, problem: Problem
              ) -> tuple[float, float | None]:
    """One forward (and backward) pass with the bare vector field: (fwd, bwd) seconds."""
    grad = spec.gradient is not None
    func = problem.func()
    y0 = problem.y0.detach().clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        fwd, wall_fwd = timed(lambda: backend.forward(spec, func, y0, problem.t_eval, False),
                              spec.on_cuda)
    if not grad:
        return wall_fwd, None
    loss = problem.loss(fwd.ys)
    _, wall_bwd = timed(loss.backward, spec.on_cuda)
    return wall_fwd, wall_bwd


def time_repeats(run: Callable[[], tuple[float, float | None]], spec: RunSpec,
                 instrumented: tuple[float, float | None], out: Measurement) -> None:
    """Set the median walls of ``spec.repeats`` calls of ``run`` (each returning its forward and
    backward seconds); over ``spec.wall_budget_s``, stop early, or report the instrumented
    run's walls when it alone exceeded the budget."""
    budget = spec.wall_budget_s if spec.wall_budget_s is not None else math.inf
    if spec.repeats == 0:
        return
    if sum(w or 0.0 for w in instrumented) > budget:
        out.wall_forward_s, out.wall_backward_s = instrumented
        out.n_repeats = 1
        out.extra["timing"] = "instrumented run only: it exceeded wall_budget_s"
        return
    walls: list[tuple[float, float | None]] = []
    gc.collect()  # once, not before each timed call (see odebench.measure.timing)
    for _ in range(spec.repeats):
        walls.append(run())
        if sum(w or 0.0 for w in walls[-1]) > budget:
            break
    out.n_repeats = len(walls)
    out.wall_forward_s, out.wall_forward_iqr_s = median_iqr([w[0] for w in walls])
    backward = [w[1] for w in walls if w[1] is not None]
    if backward:
        out.wall_backward_s, out.wall_backward_iqr_s = median_iqr(backward)

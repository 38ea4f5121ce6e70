"""One loop for every Rosenbrock (Rodas-type) tableau: linearly implicit, for stiff problems.

Each step solves ``s`` linear systems with the matrix ``W = I / (h gamma) - J``, one LU
factorisation per attempted step (``torch.linalg.lu_factor_ex`` / ``lu_solve``), in the transformed
form of :mod:`odebench.solvers.rosenbrock_tableaus`.

Dense output. Output times inside a step come from the method's continuous extension; steps are
never shortened for them. The extension is not error-controlled: in the stiff limit the stiffly
accurate step is nearly exact, so the embedded estimate lets steps grow long, while the
interpolant keeps an O(h^4) error (measured on y' = -1e6 (y - cos t) at rtol 1e-6: 1e-8 at the
steps, 8e-4 between them). ``options={"max_step": ...}`` bounds that where off-grid accuracy
matters (the ``interpolated`` adjoint reads the state from this extension).

Jacobian policy. A Rosenbrock method's order conditions assume the exact ``J = df/dy(t_n, y_n)``
(Rodas4 and Rodas5P are not W-methods), so ``J`` (and ``df/dt``) is evaluated once per step
point ``(t_n, y_n)``, as in Hairer's rodas.f, and reused by every attempt from that point (a
rejected step changes ``h``, hence a new LU, not ``J``). ``stats.n_jac`` counts Jacobians,
``stats.n_lu`` factorisations; ``stats.nfe`` counts evaluations of ``f`` (``s`` per attempt),
not the forward pass inside an autograd Jacobian.

The Jacobian is dense, [N, N] for the flat state of N = numel(y0) entries (a batch included:
N = batch x dim), so this solver is meant for N up to a few hundred; the cost per step is one
Jacobian (N vector-Jacobian products, vectorised) and one O(N^3) factorisation. It comes from
autograd through the user's ``func`` (see :class:`Jacobian`) and is recorded by autograd in
turn: the ``backprop`` and ``checkpointed`` gradients differentiate through ``J`` as through
every other operation (all out-of-place). Fields that autograd cannot differentiate get central
differences: 2N + 2 evaluations of ``f`` per Jacobian, counted in ``stats.nfe``.
"""

from __future__ import annotations

import math

import torch
from torch.func import jacrev

from odebench.solution import Stats
from odebench.solvers.control import PIController, initial_step
from odebench.solvers.func import FlatField
from odebench.solvers.loop import Integration, Observer, StepLoop, StepRecord, fixed_steps
from odebench.solvers.options import SolverOptions
from odebench.solvers.rosenbrock_tableaus import RosenbrockTableau

# (J [N, N], df/dt [N] or None for a field that does not depend on t).
Jac = tuple[torch.Tensor, torch.Tensor | None]


class CompiledRosenbrock:
    """A Rosenbrock tableau's coefficients as tensors of one dtype and device (built once per
    solve); ``a[i]``, ``C[i]`` are row i's first i entries."""

    def __init__(self, tab: RosenbrockTableau, dtype: torch.dtype, device: torch.device):
        self.tab = tab
        self.gamma = float(tab.gamma)
        self.c = [float(c) for c in tab.c]
        self.d = [float(d) for d in tab.d]
        self.a = [torch.as_tensor(tab.a[i, :i], dtype=dtype, device=device)
                  for i in range(tab.stages)]
        self.C = [torch.as_tensor(tab.C[i, :i], dtype=dtype, device=device)
                  for i in range(tab.stages)]
        self.b = torch.as_tensor(tab.b, dtype=dtype, device=device)
        self.e = torch.as_tensor(tab.b_error, dtype=dtype, device=device)
        self.H = torch.as_tensor(tab.dense, dtype=dtype, device=device)
        self.dtype, self.device = dtype, device


class Jacobian:
    """``(J, df/dt)`` of a flat field at ``(t, y)``: J of shape [N, N], df/dt of shape [N]
    (None when the field does not use ``t``).

    Exact by autograd. While autograd records the field (the ``backprop`` gradient with
    parameters or a state that require grad, the ``checkpointed`` replay) by
    ``torch.func.jacrev``, whose result is differentiable with respect to ``y`` and the field's
    parameters without walking the recorded history (``torch.autograd.grad`` on a ``y`` that
    carries the whole solve's graph would traverse it at every step: quadratic cost). Otherwise
    by one forward pass at a detached ``y`` and one batched backward pass (``is_grads_batched``),
    measured at about half jacrev's cost on the stiff test problems.
    Fields that autograd cannot differentiate (the continuous adjoints' augmented systems, which
    call ``torch.autograd.grad`` on detached copies themselves, or fields that take the time as a
    Python float) get central differences from the first failure on.
    """

    def __init__(self, f: FlatField):
        self.f = f
        self.exact = not f.pass_float_time

    def __call__(self, t: float, y: torch.Tensor, h: float, record: bool) -> Jac:
        """Evaluate at ``(t, y)``; ``h`` (time units) scales the finite-difference time step;
        ``record``: whether autograd records the field's evaluations (``f(t, y).requires_grad``).
        """
        if self.exact:
            try:
                return self._jacrev(t, y) if record else self._batched(t, y)
            except RuntimeError:
                self.exact = False
        return self._central(t, y, h)

    def _flat(self, tt: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return self.f.func(tt, self.f.shaped(yy)).reshape(-1)

    def _jacrev(self, t: float, y: torch.Tensor) -> Jac:
        dfdy, dfdt = jacrev(self._flat, argnums=(1, 0))(self.f.time(t), y)
        return dfdy, dfdt

    def _batched(self, t: float, y: torch.Tensor) -> Jac:
        with torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            tt = self.f.time(t).requires_grad_(True)
            out = self._flat(tt, yy)
            eye = torch.eye(out.numel(), dtype=out.dtype, device=out.device)
            dfdy, dfdt = torch.autograd.grad(out, (yy, tt), eye, is_grads_batched=True,
                                             allow_unused=True)
        if dfdy is None:
            raise RuntimeError("the field's output does not depend on y through autograd")
        return dfdy, dfdt

    def _central(self, t: float, y: torch.Tensor, h: float) -> Jac:
        """Central differences, step ``eps^(1/3) * max(|y_j|, 1e-3 max|y|)`` per column and
        ``eps^(1/3) |h|`` in time."""
        f = self.f
        root = torch.finfo(y.dtype).eps ** (1.0 / 3.0)
        with torch.no_grad():
            size = y.abs()
            top = float(size.max())
            delta = root * torch.clamp(size, min=1e-3 * top if top > 0 else 1.0)
        cols = []
        for j, step in enumerate(torch.diag(delta).unbind(0)):
            cols.append((f(t, y + step) - f(t, y - step)) / (2.0 * float(delta[j])))
        dt = root * max(abs(h), 1e-300)
        t_hi, t_lo = t + dt, t - dt
        dfdt = (f(t_hi, y) - f(t_lo, y)) / (t_hi - t_lo)
        return torch.stack(cols, dim=1), dfdt


def rosenbrock_step(f: FlatField, cr: CompiledRosenbrock, t: float, y: torch.Tensor, h: float,
                    jac: Jac, f0: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One step from ``(t, y)`` of signed size ``h``. Returns (stages [s tensors of shape [N]],
    y1 [N]).

    ``jac = (J, df/dt)`` at ``(t, y)``; ``f0 = f(t, y)``. Every operation is out-of-place.
    """
    dfdy, dfdt = jac
    n = y.numel()
    w = torch.eye(n, dtype=y.dtype, device=y.device) / (h * cr.gamma) - dfdy
    lu, pivots, _ = torch.linalg.lu_factor_ex(w)
    ks: list[torch.Tensor] = []
    for i in range(len(cr.c)):
        if i == 0:
            rhs = f0
        else:
            kmat = torch.stack(ks, dim=1)
            rhs = f(t + cr.c[i] * h, torch.addmv(y, kmat, cr.a[i]))
            rhs = torch.addmv(rhs, kmat, cr.C[i], alpha=1.0 / h)
        if dfdt is not None and cr.d[i] != 0.0:
            rhs = torch.add(rhs, dfdt, alpha=h * cr.d[i])
        ks.append(torch.linalg.lu_solve(lu, pivots, rhs.unsqueeze(1)).squeeze(1))
    return ks, torch.addmv(y, torch.stack(ks, dim=1), cr.b)


def rosenbrock_dense(cr: CompiledRosenbrock, y: torch.Tensor, ks: list[torch.Tensor],
                     thetas: list[float]) -> torch.Tensor:
    """States at ``t + theta*h`` for each theta from the method's continuous extension,
    ``(1 - theta) y + theta y1 + theta (1 - theta) sum_j theta^(j-1) (H k)_j``; shape [m, N]."""
    kmat = torch.stack(ks)
    y1 = torch.addmv(y, kmat.T, cr.b)
    coeffs = torch.mm(cr.H, kmat)
    th = torch.as_tensor(thetas, dtype=y.dtype, device=y.device).unsqueeze(1)
    powers = th ** torch.arange(coeffs.shape[0], dtype=y.dtype, device=y.device)
    out = (1 - th) * y + th * y1
    return torch.addmm(out, th * (1 - th) * powers, coeffs)


def rosenbrock_replay(f: FlatField, cr: CompiledRosenbrock, records: list[StepRecord],
                      y: torch.Tensor, outputs: dict[int, torch.Tensor]) -> torch.Tensor:
    """Recompute ``records``' steps from ``y`` (under whatever autograd mode is active), the
    Jacobian included; fills ``outputs`` by output index and returns the state after the last
    step (the ``checkpointed`` gradient's replay)."""
    jacobian = Jacobian(f)
    for r in records:
        f0 = f(r.t, y)
        ks, y1 = rosenbrock_step(f, cr, r.t, y, r.h, jacobian(r.t, y, r.h, f0.requires_grad), f0)
        if r.thetas:
            for j, out in enumerate(rosenbrock_dense(cr, y, ks, r.thetas).unbind(0)):
                outputs[r.out_first + j] = out
        if r.exact:
            outputs[r.out_first + len(r.thetas)] = y1
        y = y1
    return y


def integrate_rosenbrock(f: FlatField, cr: CompiledRosenbrock, y0: torch.Tensor, ts: list[float],
                         rtol: float, atol: float, stats: Stats, opts: SolverOptions,
                         max_steps: int, first_step: float | None = None,
                         norm_numel: int | None = None,
                         observer: Observer | None = None) -> Integration:
    """Integrate through the output times ``ts`` (strictly monotone Python floats).

    Adaptive with the embedded estimate, the mixed norm
    ``RMS(err / (atol + rtol * max(|y_n|, |y_n+1|)))`` over the first ``norm_numel`` entries and
    the PI controller of the explicit loop; fixed steps of ``opts.step_size`` when it is set.
    Output times inside a step come from the continuous extension (steps are never shortened for
    them). ``observer`` gets every accepted step with its stages.
    """
    if opts.step_size is not None:
        return _integrate_fixed(f, cr, y0, ts, opts.step_size, stats, max_steps, observer)
    loop = StepLoop(f, ts, y0, stats, max_steps, cr.tab.name, implicit=True)
    jacobian = Jacobian(f)
    direction = 1.0 if ts[-1] > ts[0] else -1.0
    t_end = ts[-1]
    interval = abs(t_end - ts[0])
    n = norm_numel if norm_numel is not None else y0.numel()
    t, y = ts[0], y0
    f0: torch.Tensor | None = f(t, y)
    if first_step is None:
        h_abs = initial_step(f, t, y, f0, cr.tab.error_order, rtol, atol, direction, interval,
                             norm_numel)
    else:
        h_abs = first_step
    h_abs = min(h_abs, opts.max_step, interval)
    controller = PIController(k=cr.tab.error_order + 1)
    with torch.no_grad():
        ay = y[:n].abs()
    jac: Jac | None = None
    while not loop.done:
        loop.check_underflow(t, h_abs, direction)
        h = direction * h_abs
        landing = direction * (t + h - t_end) >= 0
        if landing:
            h = t_end - t
        loop.budget(t, h)
        if f0 is None:
            f0 = f(t, y)
        if jac is None:
            jac = jacobian(t, y, h, f0.requires_grad)
            stats.n_jac += 1
        ks, y1 = rosenbrock_step(f, cr, t, y, h, jac, f0)
        stats.n_lu += 1
        with torch.no_grad():
            ay1 = y1[:n].abs()
            err = _error_ratio(cr, ks, ay, ay1, rtol, atol, n)
        if not err <= 1.0:
            h_abs = loop.reject(t, h, err, controller)
            continue
        t_new = t_end if landing else t + h
        out_first, thetas, exact = loop.accept(t, h, t_new)
        if thetas:
            loop.outputs.extend(rosenbrock_dense(cr, y, ks, thetas).unbind(0))
        if exact:
            loop.outputs.append(y1)
        if observer is not None:
            observer(StepRecord(t=t, h=h, y=y, ks=ks, out_first=out_first, thetas=thetas,
                                exact=exact))
        h_abs = min(abs(h) * controller.accept_factor(err), opts.max_step)
        if landing:
            h_abs = max(h_abs, abs(h))
        t, y, ay, f0, jac = t_new, y1, ay1, None, None
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=h_abs)


def _integrate_fixed(f: FlatField, cr: CompiledRosenbrock, y0: torch.Tensor, ts: list[float],
                     step_size: float, stats: Stats, max_steps: int,
                     observer: Observer | None) -> Integration:
    """Steps of ``step_size``; in each output interval the last step is shortened to land on the
    output time (as the explicit fixed-step loop)."""
    loop = StepLoop(f, ts, y0, stats, max_steps, cr.tab.name, implicit=True)
    jacobian = Jacobian(f)
    y = y0
    h = 0.0
    for t_start, t_stop in zip(ts[:-1], ts[1:], strict=True):
        for t, h, lands in fixed_steps(t_start, t_stop, step_size):
            loop.budget(t, h)
            f0 = f(t, y)
            ks, y1 = rosenbrock_step(f, cr, t, y, h, jacobian(t, y, h, f0.requires_grad), f0)
            stats.n_jac += 1
            stats.n_lu += 1
            if observer is not None:
                observer(StepRecord(t=t, h=h, y=y, ks=ks, out_first=len(loop.outputs),
                                    exact=lands))
            stats.n_steps += 1
            y = y1
        loop.outputs.append(y)
    loop.check_finite_fixed(h)
    stats.nfe = f.nfe
    return Integration(ys=loop.outputs, h_next=abs(h))


def _error_ratio(cr: CompiledRosenbrock, ks: list[torch.Tensor], ay: torch.Tensor,
                 ay1: torch.Tensor, rtol: float, atol: float, n: int) -> float:
    """The mixed-norm error ratio of a step (accept when <= 1); stages are in state units."""
    kmat = torch.stack([k[:n] for k in ks], dim=1)
    scale = torch.maximum(ay, ay1).mul_(rtol).add_(atol)
    err = torch.mv(kmat, cr.e).div_(scale)
    return float(torch.linalg.vector_norm(err)) / math.sqrt(n)

"""Every Rosenbrock (Rodas-type) tableau as one :class:`~odebench.solvers.method.Method`,
:class:`Rosenbrock`: linearly implicit, for stiff problems; the one loop
(:func:`odebench.solvers.loop.integrate`) runs it.

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

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacrev

from odebench.errors import InvalidInputError
from odebench.solution import Stats
from odebench.solvers.func import FlatField
from odebench.solvers.method import StepResult
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

    def __init__(self, f: FlatField, user: Callable | None = None):
        self.f = f
        self.exact = not f.pass_float_time
        self.user = user

    def __call__(self, t: float, y: torch.Tensor, h: float, record: bool) -> Jac:
        """Evaluate at ``(t, y)``; ``h`` (time units) scales the finite-difference time step;
        ``record``: whether autograd records the field's evaluations (``f(t, y).requires_grad``).
        """
        if self.user is not None:
            return self._user(t, y, h)
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

    def _user(self, t: float, y: torch.Tensor, h: float) -> Jac:
        """The user's ``jac(t, y)`` as [N, N] (refused when it has another size), df/dt by
        central differences in t."""
        f = self.f
        n = y.numel()
        dfdy = self.user(f.time(t), f.shaped(y))
        if not isinstance(dfdy, torch.Tensor) or dfdy.numel() != n * n:
            raise InvalidInputError(
                f"options['jac'] must return df/dy with {n}x{n} entries (shape [N, N] or "
                f"(*y.shape, *y.shape)) at t={t:.6g}, got "
                + (f"shape {tuple(dfdy.shape)}" if isinstance(dfdy, torch.Tensor)
                   else type(dfdy).__name__))
        dt = torch.finfo(y.dtype).eps ** (1.0 / 3.0) * max(abs(h), abs(t), 1e-300)
        t_hi, t_lo = t + dt, t - dt
        dfdt = (f(t_hi, y) - f(t_lo, y)) / (t_hi - t_lo)
        return dfdy.reshape(n, n).to(y), dfdt

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
                    jac: Jac, f0: torch.Tensor,
                    eye: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One step from ``(t, y)`` of signed size ``h``. Returns (stages [s tensors of shape [N]],
    y1 [N]).

    ``jac = (J, df/dt)`` at ``(t, y)``; ``f0 = f(t, y)``; ``eye`` the identity [N, N] (built once
    per solve). Every operation is out-of-place.
    """
    dfdy, dfdt = jac
    w = eye / (h * cr.gamma) - dfdy
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


@dataclass(slots=True)
class RosenbrockState:
    """What a Rosenbrock solve carries: ``f0 = f(t, y)`` and ``jac = (J, df/dt)`` at the current
    point (None until the first attempt from it evaluates them; rejected attempts reuse them),
    the Jacobian evaluator, the identity [N, N] and the counters (``n_jac``, ``n_lu``)."""

    f0: torch.Tensor | None
    jac: Jac | None
    jacobian: Jacobian
    eye: torch.Tensor
    stats: Stats


@dataclass(slots=True)
class RosenbrockInfo:
    """One step's dense-output data: its start state ``y`` [N], stages ``ks`` (state units) and
    ``f0 = f(t, y)``."""

    y: torch.Tensor
    ks: list[torch.Tensor]
    f0: torch.Tensor


class LinearlyImplicit:
    """What the linearly implicit methods share: the state (:class:`RosenbrockState`) and the
    Jacobian policy of the module docstring; subclasses give ``step``, ``error``, ``dense``."""

    implicit = True
    adaptive = True
    has_dense = True

    def init(self, f: FlatField, t0: float, y0: torch.Tensor, stats: Stats,
             keeps_stages: bool, jac: Callable | None = None) -> RosenbrockState:
        eye = torch.eye(y0.numel(), dtype=y0.dtype, device=y0.device)
        return RosenbrockState(f(t0, y0), None, Jacobian(f, jac), eye, stats)

    def slope(self, state: RosenbrockState) -> torch.Tensor:
        return state.f0

    @staticmethod
    def at_point(f: FlatField, t: float, y: torch.Tensor, h: float,
                 state: RosenbrockState) -> tuple[torch.Tensor, Jac]:
        """``(f(t, y), (J, df/dt))`` at the state's point, evaluated on the first attempt from
        it and kept in ``state`` for the attempts after a rejection."""
        if state.f0 is None:
            state.f0 = f(t, y)
        if state.jac is None:
            state.jac = state.jacobian(t, y, h, state.f0.requires_grad)
            state.stats.n_jac += 1
        return state.f0, state.jac

    @staticmethod
    def next_state(state: RosenbrockState, f0: torch.Tensor | None = None) -> RosenbrockState:
        """The state at the end of an accepted step (``f0`` there when known)."""
        return RosenbrockState(f0, None, state.jacobian, state.eye, state.stats)

    def prepare_dense(self, f: FlatField, info: RosenbrockInfo) -> None:
        """Nothing: the continuous extensions need only the step's stages."""

    def start_slope(self, info: RosenbrockInfo) -> torch.Tensor:
        return info.f0


class Rosenbrock(LinearlyImplicit):
    """A Rosenbrock tableau as a :class:`~odebench.solvers.method.Method`."""

    def __init__(self, cr: CompiledRosenbrock):
        self.cr = cr
        self.name, self.order, self.error_order = cr.tab.name, cr.tab.order, cr.tab.error_order

    def step(self, f: FlatField, t: float, y: torch.Tensor, h: float, state: RosenbrockState,
             need_next: bool = True) -> StepResult:
        f0, jac = self.at_point(f, t, y, h, state)
        ks, y1 = rosenbrock_step(f, self.cr, t, y, h, jac, f0, state.eye)
        state.stats.n_lu += 1
        return StepResult(y1=y1, dense_info=RosenbrockInfo(y, ks, f0),
                          state=self.next_state(state))

    def error(self, info: RosenbrockInfo, n: int) -> tuple[torch.Tensor, None]:
        """``sum_i e_i k_i`` in the first ``n`` entries (an increment: scale None, i.e. 1)."""
        return torch.mv(torch.stack([k[:n] for k in info.ks], dim=1), self.cr.e), None

    def dense(self, info: RosenbrockInfo, thetas: list[float]) -> torch.Tensor:
        return rosenbrock_dense(self.cr, info.y, info.ks, thetas)

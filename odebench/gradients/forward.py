"""``forward``: forward-mode sensitivities. The state ``y`` [n] and its sensitivities
``S = dy/dtheta`` [n, k] with respect to ``theta = (y0, params)`` (k = n + m) are integrated
together, forward in time, as one flat system ``z = [y, S]``::

    y' = f(t, y),     S' = df/dy S + df/dp [0 | I_m],     S(t0) = [I_n | 0]

solved by the forward method at the forward tolerances (explicit and Rosenbrock methods alike;
a Rosenbrock method differentiates the augmented field by autograd, or by central differences
where autograd through ``vmap(jvp)`` fails).
The error norm covers all of ``z``, the sensitivities included: they are what the gradient is
made of, and leaving them out of the norm would leave the gradient's error uncontrolled (the
choice of CVODES' ``errconS`` and of SciMLSensitivity's ForwardSensitivity).

The columns ``df/dy S[:, j] + df/dp e_j`` are Jacobian-vector products by ``torch.func.jvp``,
batched over the k columns with ``torch.func.vmap``; a field that ``vmap`` cannot batch (a
warning says so) gets one ``jvp`` per column. The backward pass only contracts ``dL/dy(t_i)``
with the stored ``S(t_i)``: no backward solve (``stats.nfe_backward = 0``), nothing stored but
the outputs' sensitivities, ``T x n x k`` numbers (``stats.saved_bytes``). The work grows as
``n x k`` per step, so the method pays off for few parameters plus states (Ma et al., HPEC 2021,
arXiv 1812.01892: forward mode is fastest below about 100).

Parameters are substituted with ``torch.func.functional_call``: ``func`` must be an
``nn.Module`` holding them; a ``params=`` tensor that is not a parameter of ``func`` is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch.func import functional_call, jvp, vmap

from odebench.errors import InvalidInputError
from odebench.gradients.adjoint_field import split_params
from odebench.gradients.base import OdeCall, stack_outputs, tensor_bytes
from odebench.solution import Stats
from odebench.solvers import FlatField

Tangents = tuple[torch.Tensor, ...]


def parameter_names(call: OdeCall) -> list[str]:
    """The names in ``call.func`` (an nn.Module) of ``call.params``, in order; InvalidInputError
    for a parameter ``functional_call`` cannot substitute."""
    if not call.params:
        return []
    by_id = ({id(p): name for name, p in call.func.named_parameters()}
             if isinstance(call.func, torch.nn.Module) else {})
    missing = [i for i, p in enumerate(call.params) if id(p) not in by_id]
    if missing:
        raise InvalidInputError(
            f"gradient='forward' substitutes parameters with torch.func.functional_call, so "
            f"every tensor it differentiates must be a parameter of func (an nn.Module); "
            f"{len(missing)} params= tensor(s) are not (shapes "
            f"{[tuple(call.params[i].shape) for i in missing]}). Use another gradient method.")
    return [by_id[id(p)] for p in call.params]


class SensitivityField:
    """The flat augmented field ``z = [y, S] -> [f, df/dy S + df/dp [0 | I]]``.

    Shapes: ``y`` [n] (the user's state flattened), ``S`` [n, k] row-major, ``k = n + m`` with
    ``m`` the number of parameter entries. ``batched`` is False once ``vmap`` has failed on
    ``func`` (then one ``jvp`` per column).
    """

    def __init__(self, call: OdeCall):
        self.call = call
        self.n = call.y0.numel()
        self.names = parameter_names(call)
        self.primals = tuple(p.detach() for p in call.params)
        m = sum(p.numel() for p in call.params)
        self.k = self.n + m
        basis = torch.eye(self.k, dtype=call.y0.dtype, device=call.y0.device)[:, self.n:]
        self.param_tangents = _split_columns(basis, call.params)  # each [k, *p.shape]
        self.batched = True

    def _f(self, t: torch.Tensor) -> Callable[..., torch.Tensor]:
        shape, func, names = self.call.shape, self.call.func, self.names

        def f(y: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
            y = y.view(shape)
            out = func(t, y) if not names else functional_call(func, dict(zip(names, ps)), (t, y))
            return out.reshape(-1)
        return f

    def __call__(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        n, k = self.n, self.k
        y, s = z[:n], z[n:].view(n, k)
        f = self._f(t)
        primals = (y, *self.primals)

        def column(v_y: torch.Tensor, *v_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return jvp(f, primals, (v_y, *v_p))

        columns = (s.T, *self.param_tangents)
        if self.batched:
            try:
                fy, ds = vmap(column)(*columns)
                return torch.cat([fy[0], ds.T.reshape(-1)])
            except RuntimeError as err:
                if z.requires_grad:  # differentiated (a Rosenbrock Jacobian): it falls back
                    raise
                self.batched = False
                warnings.warn(f"gradient='forward': torch.func.vmap cannot batch func "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                              f"falling back to one jvp per column ({k} per evaluation)",
                              RuntimeWarning, stacklevel=2)
        try:
            outs = [column(*(c[j] for c in columns)) for j in range(k)]
        except RuntimeError as err:
            raise InvalidInputError(
                f"gradient='forward' needs forward-mode AD (torch.func.jvp) of func, which "
                f"failed: {type(err).__name__}: {str(err).splitlines()[0][:300]}. Use another "
                f"gradient method.") from err
        ds = torch.stack([o[1] for o in outs], dim=1)
        return torch.cat([outs[0][0], ds.reshape(-1)])


def _split_columns(basis: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """``basis`` [k, m] split along m into tensors [k, *p.shape] for each parameter."""
    out, offset = [], 0
    for p in params:
        out.append(basis[:, offset: offset + p.numel()].reshape(basis.shape[0], *p.shape))
        offset += p.numel()
    return out


def contract(grad_flat: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """``sum_i dL/dy(t_i) S(t_i)``: grad_flat [T, n], sens [T, n, k] -> [k]."""
    return torch.einsum("tn,tnk->k", grad_flat, sens)


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: OdeCall, stats: Stats, y0: torch.Tensor, *params: torch.Tensor):
        y0_flat = y0.detach().reshape(-1)
        call.field()(call.ts[0], y0_flat)  # the user field's first-evaluation checks and guard
        sf = SensitivityField(call)
        n, k = sf.n, sf.k
        aug = FlatField(sf, torch.Size([n + n * k]), y0.dtype, y0.device)
        s0 = torch.eye(n, k, dtype=y0.dtype, device=y0.device)
        with torch.no_grad():
            result = call.forward(aug, torch.cat([y0_flat, s0.reshape(-1)]), stats)
        stats.nfe = aug.nfe + 1
        zs = torch.stack(result.ys)
        sens = zs[:, n:].reshape(len(call.ts), n, k).clone()
        ctx.call, ctx.stats, ctx.n, ctx.sens = call, stats, n, sens
        stats.saved_bytes = tensor_bytes([sens])
        return stack_outputs(call, list(zs[:, :n].unbind(0)))

    @staticmethod
    def backward(ctx, grad_ys: torch.Tensor):
        call: OdeCall = ctx.call
        grad = contract(grad_ys.reshape(len(call.ts), -1), ctx.sens)
        ctx.stats.nfe_backward = 0
        grad_y0 = grad[: ctx.n].view(call.shape)
        return (None, None, grad_y0, *split_params(grad[ctx.n:], call.params))


def solve(call: OdeCall, stats: Stats) -> torch.Tensor:
    """Integrate state and sensitivities forward; backward contracts them. Returns ys
    [T, *shape]."""
    return _Forward.apply(call, stats, call.y0, *call.params)

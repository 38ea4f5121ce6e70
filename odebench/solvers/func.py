"""The vector field as the solver loop sees it: flat state in, flat derivative out, calls counted."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

from odebench.errors import InvalidInputError, NonFiniteError


class FlatField:
    """Wrap ``func(t, y) -> dy/dt`` (y of shape ``shape``) as ``f(t: float, y_flat) -> dy_flat``.

    Counts evaluations in ``nfe`` (and in ``nfe_recorded`` those made while autograd records, which
    a backward pass through the solver differentiates once each). The first evaluation checks the
    returned shape, dtype and finiteness, so that a wrong vector field fails with a clear message,
    not deep inside a step.
    With ``pass_float_time`` the function is called as ``func(t_float, t_tensor, y)`` (internal
    fields that need the time as a Python number without a device synchronisation).
    With ``known_params`` (the adjoint gradients, which differentiate only ``y0`` and these), the
    first evaluation records a graph and refuses any other tensor requiring grad that ``func``
    reaches (a closure, ``torch.func.functional_call``): it would silently get no gradient.
    """

    def __init__(self, func: Callable[..., torch.Tensor],
                 shape: torch.Size, dtype: torch.dtype, device: torch.device,
                 pass_float_time: bool = False, known_params: list[torch.Tensor] | None = None,
                 gradient: str = "backprop"):
        self.func = func
        self.pass_float_time = pass_float_time
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.nfe = 0
        self.nfe_recorded = 0
        self._checked = False
        self.known_params = known_params
        self.gradient = gradient
        self._flat = len(shape) == 1  # the loop's flat state is already the user's shape
        # view(*ints) parses faster than view(torch.Size) (about 1 us against 2.5 us on a CPU):
        # it is on every evaluation's path
        self._dims = tuple(shape)

    def time(self, t: float) -> torch.Tensor:
        """A 0-d tensor holding ``t`` in the state's dtype and device."""
        return torch.full((), t, dtype=self.dtype, device=self.device)

    def __call__(self, t: float, y: torch.Tensor) -> torch.Tensor:
        if self._checked:
            return self.at(t, self.time(t), y)
        self.nfe += 1
        if torch.is_grad_enabled():
            self.nfe_recorded += 1
        if self.known_params is None:
            out = self._eval(t, y)
        else:
            recording = torch.is_grad_enabled()
            with torch.enable_grad(), _CreatedTensors() as created:
                out = self._eval(t, y.detach() if not recording else y)
            if isinstance(out, torch.Tensor):
                self._check_captured(out, y, created.ids)
                if not recording:
                    out = out.detach()
        self._check(t, out)
        return out.reshape(-1)

    def at(self, t: float, t_tensor: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """As ``self(t, y)`` with the time already a 0-d tensor ``t_tensor`` (== ``t``; a step
        makes all its stage times in one operation). Every evaluation after the first, checked
        one comes through here or :meth:`raw`."""
        out = self.raw(t, t_tensor, y)
        return out if self._flat else out.reshape(-1)

    def raw(self, t: float, t_tensor: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """As :meth:`at`, but the derivative in the state's shape ``self.shape``, not flattened
        (for a caller that copies it into a buffer row of that shape)."""
        if not self._checked:
            return self.shaped(self(t, y))
        self.nfe += 1
        if torch.is_grad_enabled():
            self.nfe_recorded += 1
        y_shaped = self.shaped(y)
        if self.pass_float_time:
            return self.func(t, t_tensor, y_shaped)
        return self.func(t_tensor, y_shaped)

    def shaped(self, y: torch.Tensor) -> torch.Tensor:
        """The flat state ``y`` [N] as a view of the state's shape (``y`` itself for 1-D)."""
        if self._flat:
            return y
        return y.view(*self._dims) if self._dims else y.view(())

    def _eval(self, t: float, y: torch.Tensor) -> torch.Tensor:
        if self.pass_float_time:
            return self.func(t, self.time(t), self.shaped(y))
        return self.func(self.time(t), self.shaped(y))

    def _check_captured(self, out: torch.Tensor, y: torch.Tensor, created: set[int]) -> None:
        """Refuse leaves of ``out``'s graph that are neither known parameters, nor behind ``y``,
        nor created during the call (e.g. ``z.detach().requires_grad_()`` for a trace)."""
        allowed = {id(p) for p in self.known_params or ()} | set(_leaves(y)) | created
        missing = {k: v for k, v in _leaves(out).items() if k not in allowed}
        if missing:
            shapes = ", ".join(str(tuple(m.shape)) for m in list(missing.values())[:5])
            raise InvalidInputError(
                f"func uses {len(missing)} tensor(s) that require grad but are neither "
                f"parameters of func (an nn.Module) nor in params= (shapes {shapes}); "
                f"gradient='{self.gradient}' would give them no gradient. Pass them as "
                "params=[...], or use gradient='backprop'.")

    def check_layout(self, out: object) -> None:
        """Raise InvalidInputError unless ``out`` is a tensor of the state's shape and dtype."""
        if not isinstance(out, torch.Tensor):
            raise InvalidInputError(f"func must return a Tensor, got {type(out).__name__}")
        if out.shape != self.shape:
            raise InvalidInputError(
                f"func returned shape {tuple(out.shape)} but the state y0 has shape "
                f"{tuple(self.shape)}"
            )
        if out.dtype != self.dtype:
            raise InvalidInputError(
                f"func returned dtype {out.dtype} but the state y0 has dtype {self.dtype}"
            )

    def _check(self, t: float, out: object) -> None:
        self.check_layout(out)
        if not all_finite(out):
            raise NonFiniteError(f"func returned non-finite values at t={t:.6g} (first evaluation)")
        self._checked = True


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of ``x`` is finite. The common case costs one reduction and one host
    read: a sum of finite numbers is finite unless it overflows, and then the exact (slower)
    test decides. ``torch.isfinite`` is composite (several kernels), about 20 us per call inside
    a solve on a CPU, against a few for the sum."""
    if math.isfinite(float((x.detach() if x.requires_grad else x).sum())):
        return True
    return bool(torch.isfinite(x).all())


def _leaves(tensor: torch.Tensor) -> dict[int, torch.Tensor]:
    """The leaf tensors requiring grad that ``tensor`` depends on, by id."""
    if tensor.grad_fn is None:
        return {id(tensor): tensor} if tensor.requires_grad else {}
    found: dict[int, torch.Tensor] = {}
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        leaf = getattr(node, "variable", None)
        if isinstance(leaf, torch.Tensor):
            found[id(leaf)] = leaf
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return found


class _CreatedTensors(TorchFunctionMode):
    """Records the ids of the tensors torch operations create while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(item, torch.Tensor):
                self.ids.add(id(item))
        return out

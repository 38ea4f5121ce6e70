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
    not deep inside a step; every later one checks shape and dtype (a comparison, no kernel), and
    that ``func`` left its input ``y`` unmodified (its version counter): a field that writes into
    ``y`` would corrupt the solver's states, so it is refused with InvalidInputError.
    ``name`` is what messages call the field ("func", or an adjoint's augmented field).
    With ``pass_float_time`` the function is called as ``func(t_float, t_tensor, y)`` (internal
    fields that need the time as a Python number without a device synchronisation).
    With ``known_params`` (the adjoint gradients, which differentiate only ``y0`` and these), the
    first evaluation records a graph and refuses any other tensor requiring grad that ``func``
    reaches (a closure, ``torch.func.functional_call``): it would silently get no gradient. The
    adjoints' backward passes keep that check for the whole solve (:class:`CapturedGuard`).
    """

    def __init__(self, func: Callable[..., torch.Tensor],
                 shape: torch.Size, dtype: torch.dtype, device: torch.device,
                 pass_float_time: bool = False, known_params: list[torch.Tensor] | None = None,
                 gradient: str = "backprop", name: str = "func"):
        self.func = func
        self.pass_float_time = pass_float_time
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.nfe = 0
        self.nfe_recorded = 0
        self._checked = False
        self._track = True  # inference tensors have no version counter
        self.known_params = known_params
        self.gradient = gradient
        self.name = name
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
        self._track = not y.is_inference()
        version = y._version if self._track else 0
        if self.known_params is None:
            out = self._eval(t, y)
        else:
            recording = torch.is_grad_enabled()
            with torch.enable_grad(), _CreatedTensors() as created:
                out = self._eval(t, y.detach() if not recording else y)
            if isinstance(out, torch.Tensor):
                CapturedGuard(self.known_params, self.gradient).check([out], [y], created.ids)
                if not recording:
                    out = out.detach()
        self._check_unmodified(t, y, version)
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
        version = y._version if self._track else 0
        if self.pass_float_time:
            out = self.func(t, t_tensor, y_shaped)
        else:
            out = self.func(t_tensor, y_shaped)
        if self._track and y._version != version:
            self._check_unmodified(t, y, version)
        if not isinstance(out, torch.Tensor) or out.shape != self.shape or out.dtype != self.dtype:
            self.check_layout(out, t)
        return out

    def shaped(self, y: torch.Tensor) -> torch.Tensor:
        """The flat state ``y`` [N] as a view of the state's shape (``y`` itself for 1-D)."""
        if self._flat:
            return y
        return y.view(*self._dims) if self._dims else y.view(())

    def _eval(self, t: float, y: torch.Tensor) -> torch.Tensor:
        if self.pass_float_time:
            return self.func(t, self.time(t), self.shaped(y))
        return self.func(self.time(t), self.shaped(y))

    def _check_unmodified(self, t: float, y: torch.Tensor, version: int) -> None:
        if self._track and y._version != version:
            raise InvalidInputError(
                f"{self.name} modified its input y in place at t={t:.6g} (e.g. y += ..., "
                "y.mul_(...)); y is the solver's state: return a new tensor instead")

    def check_layout(self, out: object, t: float | None = None) -> None:
        """Raise InvalidInputError unless ``out`` is a tensor of the state's shape and dtype
        (``t``: the time of the evaluation, named in the message)."""
        at = "" if t is None else f" at t={t:.6g}"
        if not isinstance(out, torch.Tensor):
            raise InvalidInputError(f"{self.name} must return a Tensor, got "
                                    f"{type(out).__name__}{at}")
        if out.shape != self.shape:
            raise InvalidInputError(
                f"{self.name} returned shape {tuple(out.shape)}{at} but the state y0 has shape "
                f"{tuple(self.shape)}"
            )
        if out.dtype != self.dtype:
            raise InvalidInputError(
                f"{self.name} returned dtype {out.dtype}{at} but the state y0 has dtype "
                f"{self.dtype}"
            )

    def _check(self, t: float, out: object) -> None:
        self.check_layout(out)
        if not all_finite(out):
            raise NonFiniteError(f"{self.name} returned non-finite values at t={t:.6g} "
                                 "(first evaluation)")
        self._checked = True


class CapturedGuard:
    """Refuses tensors requiring grad that ``func``'s graph reaches besides ``known_params``,
    the inputs and tensors created during the evaluation (e.g. ``z.detach().requires_grad_()``
    for a trace): an adjoint differentiates only ``y0`` and ``known_params``, so such a tensor
    would silently get no gradient.

    :meth:`check` is exact (it needs the ids of the tensors an evaluation created, recorded by a
    TorchFunctionMode: slow). :meth:`watch`, run on every evaluation an adjoint's backward pass
    records anyway, only walks the graph; when it finds more unknown leaves than the exact check
    last found created ones, it re-runs the evaluation under the exact check.
    """

    def __init__(self, known_params: list[torch.Tensor], gradient: str):
        self.known = {id(p) for p in known_params}
        self.gradient = gradient
        self.created_seen = 0

    def check(self, outs: list[torch.Tensor], inputs: list[torch.Tensor],
              created: set[int]) -> None:
        """Raise InvalidInputError for leaves of ``outs`` that are neither known parameters, nor
        behind ``inputs``, nor in ``created``."""
        missing = self._unknown(outs, inputs, created)
        if missing:
            shapes = ", ".join(str(tuple(m.shape)) for m in list(missing.values())[:5])
            raise InvalidInputError(
                f"func uses {len(missing)} tensor(s) that require grad but are neither "
                f"parameters of func (an nn.Module) nor in params= (shapes {shapes}); "
                f"gradient='{self.gradient}' would give them no gradient. Pass them as "
                "params=[...], or use gradient='backprop'.")

    def watch(self, outs: list[torch.Tensor], inputs: list[torch.Tensor],
              rerun: Callable[[], list[torch.Tensor]]) -> None:
        """The cheap check of one recorded evaluation (``outs`` from ``inputs``); ``rerun``
        repeats it, for the exact check when the cheap one is in doubt."""
        unknown = self._unknown(outs, inputs, set())
        if len(unknown) <= self.created_seen:
            return
        with torch.enable_grad(), _CreatedTensors() as created:
            again = rerun()
        self.check(again, inputs, created.ids)
        self.created_seen = max(self.created_seen, len(self._unknown(again, inputs, set())))

    def _unknown(self, outs: list[torch.Tensor], inputs: list[torch.Tensor],
                 created: set[int]) -> dict[int, torch.Tensor]:
        allowed = self.known | created | set(_leaves(*inputs))
        return {k: v for k, v in _leaves(*outs).items() if k not in allowed}


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of ``x`` is finite. The common case costs one reduction and one host
    read: a sum of finite numbers is finite unless it overflows, and then the exact (slower)
    test decides. ``torch.isfinite`` is composite (several kernels), about 20 us per call inside
    a solve on a CPU, against a few for the sum."""
    if math.isfinite(float((x.detach() if x.requires_grad else x).sum())):
        return True
    return bool(torch.isfinite(x).all())


def _leaves(*tensors: torch.Tensor) -> dict[int, torch.Tensor]:
    """The leaf tensors requiring grad that ``tensors`` depend on, by id (one walk of their
    joint graph; a leaf's node, AccumulateGrad, is the only kind that holds a ``variable``
    and it has no inputs)."""
    found: dict[int, torch.Tensor] = {}
    stack = []
    for tensor in tensors:
        if tensor.grad_fn is not None:
            stack.append(tensor.grad_fn)
        elif tensor.requires_grad:
            found[id(tensor)] = tensor
    seen = set(stack)
    while stack:
        node = stack.pop()
        inputs = node.next_functions
        if not inputs:
            leaf = getattr(node, "variable", None)
            if leaf is not None:
                found[id(leaf)] = leaf
            continue
        for next_fn, _ in inputs:
            if next_fn is not None and next_fn not in seen:
                seen.add(next_fn)
                stack.append(next_fn)
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

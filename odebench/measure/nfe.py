"""Counting vector-field evaluations: forward calls and backward vector-Jacobian products.

``CountingField(func)`` is an ``nn.Module`` wrapping ``func(t, y) -> dy/dt``; its parameters are
``func``'s, so gradient methods that differentiate a module's parameters see the same tensors.
Each call is counted, and so is each VJP autograd (or ``torch.func``) takes through a call's
output, by an identity ``autograd.Function`` put on that output. Counts are split by *phase*
(``"forward"`` or ``"backward"``, set with :meth:`CountingField.phase`), the part of a run in
which the call was made, so that a backward pass that re-evaluates the field (an adjoint) is
told apart from one that only replays the forward pass's graph (backprop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

PHASES: tuple[str, ...] = ("forward", "backward")


class _CountVjp(torch.autograd.Function):
    """Identity on a call's output whose backward counts one VJP for the call's phase."""

    generate_vmap_rule = True

    @staticmethod
    def forward(out: torch.Tensor, field: CountingField, phase: str) -> torch.Tensor:
        return out.view_as(out)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.field, ctx.phase = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ctx.field.vjps[ctx.phase] += 1
        return grad, None, None


class CountingField(torch.nn.Module):
    """``func(t, y)`` with its calls and the VJPs through them counted.

    Attributes:
        func: the wrapped vector field (a module's parameters become this module's).
        calls: calls made in each phase, ``{"forward": int, "backward": int}``.
        vjps: VJPs taken through outputs of calls made in each phase (keyed by the phase of the
            *call*, not of the VJP).
    """

    def __init__(self, func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.func = func
        self.current = "forward"
        self.calls: dict[str, int] = {}
        self.vjps: dict[str, int] = {}
        self.reset()

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls[self.current] += 1
        out = self.func(t, y)
        if torch.is_grad_enabled() and out.requires_grad:
            out = _CountVjp.apply(out, self, self.current)
        return out

    def reset(self) -> None:
        """Zero every counter and return to the forward phase."""
        self.current = "forward"
        self.calls = dict.fromkeys(PHASES, 0)
        self.vjps = dict.fromkeys(PHASES, 0)

    @contextmanager
    def phase(self, name: str) -> Iterator[CountingField]:
        """Count the calls made inside the block as phase ``name`` ("forward" or "backward")."""
        if name not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {name!r}")
        previous, self.current = self.current, name
        try:
            yield self
        finally:
            self.current = previous

    @property
    def n_forward(self) -> int:
        """All calls of ``func`` (every phase)."""
        return sum(self.calls.values())

    @property
    def n_backward(self) -> int:
        """All VJPs taken through ``func``'s outputs (every phase)."""
        return sum(self.vjps.values())

    @property
    def nfe_forward(self) -> int:
        """Evaluations of the forward pass: the calls made in the forward phase."""
        return self.calls["forward"]

    @property
    def nfe_backward(self) -> int:
        """Evaluations of the backward pass, each counted once.

        A call made in the backward phase (an adjoint's re-evaluation, with or without a VJP
        through it) counts one; so does a VJP through a call of the forward phase (backprop
        replaying the forward graph). This is the NFE-B of Chen et al. (2018) for adjoints and
        the number of differentiated evaluations for backprop.
        """
        return self.calls["backward"] + self.vjps["forward"]

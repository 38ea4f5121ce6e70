"""Options of a solve: the keys ``options=`` accepts, with their defaults and checks."""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from odebench.errors import InvalidInputError


@dataclass(frozen=True)
class SolverOptions:
    """Everything ``options={...}`` may set.

    Every value is checked against its field's declared type (bool fields take only ``True`` /
    ``False``, int fields only integers, float fields real numbers but not bools, str fields
    strings; ``None`` only where the type allows it), so that no value is silently coerced.

    Attributes:
        step_size: fixed step size (time units); required for euler/midpoint/rk4 unless the output
            grid itself is the step grid; with an adaptive method it switches error control off.
        max_num_steps: budget of attempted steps (accepted + rejected), per solve.
        first_step: initial step size; by default Hairer's automatic choice.
        max_step: upper bound on |h|.
        checkpoint_every: ``checkpointed`` gradient: keep the state of every k-th step.
        adjoint_rtol, adjoint_atol: tolerances of the backward (adjoint) solve; default the forward's.
        adjoint_method: the method of the backward solve; default the forward's.
        seminorm: ``backsolve`` and ``interpolated``: leave the parameter-gradient channels
            out of the backward solve's error norm (Kidger, Chen & Lyons, "Hey, that's not an
            ODE", ICML 2021); with any other gradient, or fixed backward steps, it has no effect
            and a RuntimeWarning says so.
        reanchor: ``backsolve``: replace the re-integrated state by the stored forward value at each
            output time (hides the drift; off by default so that it stays visible).
        max_num_steps_backward: step budget of the backward solve; default ``max_num_steps``.
        step_t: times (any order; a tensor or a sequence of floats) that steps must end on; the
            solve is split there (:mod:`odebench.segments`). Parsed into a sorted tuple of floats.
        jump_t: times of known discontinuities of ``func`` in t: the solve is split there and
            restarts (new initial step, no FSAL carry-over); ``func`` is evaluated one ulp inside
            each side of the point (torchdiffeq's semantics). Sorted tuple of floats; no point may
            also be in ``step_t``.
        perturb: torchdiffeq's flag: evaluations at the ends of every output interval (and of
            every step_t/jump_t piece) take the one-sided time one ulp inside the interval, so that
            a ``func`` discontinuous in t at those points sees its one-sided limits.
        dtype: dtype of the time tensor ``func`` receives (torch.float32 or torch.float64); by
            default the state's. The step grid itself is always computed in float64.
        stiffness_check: explicit adaptive methods: stop early with MaxStepsExceededError when
            the problem is found stiff and the budget would run out (:mod:`odebench.stiffness`).
        adjoint_norm: error norm of the adjoints' backward systems: "mixed" (default), one RMS
            norm over the whole augmented state; "per_part", the max of the RMS norms of its
            parts (y, a and each parameter tensor's dL/dp for backsolve; a and each dL/dp for
            interpolated), as torchdiffeq's adjoint measures them (with ``seminorm`` the dL/dp
            parts are left out either way). Where it has no effect (no augmented adaptive
            backward solve, reversible_heun's one-norm loop) a RuntimeWarning says so.
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
    step_t: tuple[float, ...] | None = None
    jump_t: tuple[float, ...] | None = None
    perturb: bool = False
    dtype: torch.dtype | None = None
    stiffness_check: bool = True
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
        options = dict(options)
        for name in ("step_t", "jump_t"):
            if options.get(name) is not None:
                options[name] = _time_points(name, options[name])
        hints = typing.get_type_hints(cls)
        for name, value in options.items():
            check_type(f"options['{name}']", value, hints[name])
        opts = cls(**options)
        if opts.step_t and opts.jump_t and set(opts.step_t) & set(opts.jump_t):
            raise InvalidInputError(
                "options['step_t'] and options['jump_t'] share the point(s) "
                f"{sorted(set(opts.step_t) & set(opts.jump_t))}; a point may be in only one")
        if opts.dtype not in (None, torch.float32, torch.float64):
            raise InvalidInputError(
                f"options['dtype'] must be torch.float32 or torch.float64, got {opts.dtype!r}")
        for name in ("step_size", "first_step", "max_step", "adjoint_rtol", "adjoint_atol"):
            value = getattr(opts, name)
            if value is not None and not (float(value) > 0 and not math.isnan(float(value))):
                raise InvalidInputError(f"options['{name}'] must be > 0, got {value}")
        for name in ("max_num_steps", "checkpoint_every", "max_num_steps_backward"):
            value = getattr(opts, name)
            if value is not None and value < 1:
                raise InvalidInputError(f"options['{name}'] must be a positive integer, got {value}")
        if opts.adjoint_norm not in ("mixed", "per_part"):
            raise InvalidInputError(
                f"options['adjoint_norm'] must be 'mixed' or 'per_part', got {opts.adjoint_norm!r}")
        return opts


# Declared types whose values are checked by kind; other classes by isinstance.
_KINDS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "True or False"),
    int: ((numbers.Integral,), "an integer"),
    float: ((numbers.Real,), "a real number"),
    str: ((str,), "a string"),
}


def check_type(name: str, value: Any, hint: Any) -> None:
    """Raise InvalidInputError naming ``name`` unless ``value`` fits the type hint ``hint``:
    a class, or a union of classes (``float | None``); bools never pass as numbers. Hints of
    other forms (generics) are checked by their origin class."""
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) or \
        typing.get_origin(hint) is typing.Union else (hint,)
    for member in members:
        if member is type(None):
            if value is None:
                return
            continue
        origin = typing.get_origin(member) or member
        if not isinstance(origin, type):
            return  # a hint this check cannot judge (e.g. a TypeVar): accept
        kinds, _ = _KINDS.get(origin, ((origin,), ""))
        if isinstance(value, kinds) and (origin is bool or not isinstance(value, bool)):
            return
    wanted = " or ".join(_describe(m) for m in members)
    raise InvalidInputError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__})")


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "None"
    origin = typing.get_origin(hint) or hint
    return _KINDS[origin][1] if origin in _KINDS else f"a {getattr(origin, '__name__', hint)}"


def _time_points(name: str, value: Any) -> tuple[float, ...]:
    """``step_t``/``jump_t`` as a sorted tuple of distinct finite floats."""
    try:
        points = [float(x) for x in torch.as_tensor(value, dtype=torch.float64).reshape(-1)]
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"options['{name}'] must be a 1-D sequence of times: {exc}") from None
    if not all(math.isfinite(x) for x in points):
        raise InvalidInputError(f"options['{name}'] contains NaN or inf values")
    if len(set(points)) != len(points):
        raise InvalidInputError(f"options['{name}'] has repeated points")
    return tuple(sorted(points))


DEFAULTS = SolverOptions()
"""The options of a solve without ``options=`` (frozen, so shared)."""

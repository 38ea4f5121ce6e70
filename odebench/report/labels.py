"""What a row ran, as the report names it: the peer's own method name, the gradient variant,
and whether a finished gradient run kept within the gate's error budget.

A backend's ``method`` column holds odebench's name of the slot it fills (e.g.
``dop853``); the backend records the library's own name in the ``peer_method`` column
(older rows: ``extra["library_method"]``; torchdiffeq's 8th-order method is ``dopri8``). The
report shows the library's name and states the mapping once (:func:`method_mapping`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import torch

from odebench.testing import BUDGET_EPS_FACTOR, BUDGET_RTOL_FACTOR, default_budget

__all__ = [
    "as_dict",
    "OVER_BUDGET",
    "REANCHOR",
    "SLOT",
    "VARIANT_NOTES",
    "budget_note",
    "gradient_variant",
    "method_mapping",
    "over_budget",
    "shown_method",
]

#: The column keeping odebench's name of the slot a peer's method fills (``method`` shows the
#: peer's own name).
SLOT = "method_slot"

#: The status a finished run gets when its gradient error exceeds the budget.
OVER_BUDGET = "ok (over budget)"

#: Suffix of a backsolve variant that replaces the re-integrated state by the stored forward one.
REANCHOR = "+reanchor"

#: Backends whose backsolve adjoint always re-anchors (torchdiffeq's odeint_adjoint restarts the
#: backward solve from the forward solution at every output time).
_REANCHORING_BACKENDS = frozenset({"torchdiffeq"})

#: One line per gradient variant, shown under every table that names gradient variants.
VARIANT_NOTES: dict[str, str] = {
    "backprop": "backprop: autograd through the solver's operations",
    "backsolve": (
        "backsolve: adjoint solved backward together with the state re-integrated from the final"
        " value, no correction"
    ),
    "backsolve+reanchor": (
        "backsolve+reanchor: the same, but the re-integrated state is replaced by the stored"
        " forward value at each output time (torchdiffeq's odeint_adjoint does this)"
    ),
    "backsolve_seminorm": "backsolve_seminorm: backsolve whose step control ignores the"
    " parameter-adjoint components (Kidger et al. 2021)",
    "backsolve_seminorm+reanchor": "backsolve_seminorm+reanchor: the seminorm variant, re-anchored",
    "interpolated": "interpolated: adjoint along a dense interpolant of the stored forward solution",
    "checkpointed": "checkpointed: autograd through steps replayed from stored checkpoints",
}


def as_dict(value: Any) -> dict[str, Any]:
    """A row's dict column (``extra``, ``params``) as a dict, whether it comes as a dict or as
    JSON text; else empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        return json.loads(value)
    return {}


def shown_method(record: dict[str, Any]) -> Any:
    """The library's own name of the method the row ran (the ``peer_method`` column, or
    ``extra["library_method"]`` in older rows), else ``record["method"]``."""
    peer = record.get("peer_method")
    if isinstance(peer, str) and peer:
        return peer
    return as_dict(record.get("extra")).get("library_method") or record.get("method")


def method_mapping(records: Iterable[dict[str, Any]]) -> str:
    """One line stating where a peer's method name differs from odebench's slot name, e.g.
    "torchdiffeq dopri8 fills odebench's dop853 slot"; "" when no name differs. ``records``
    hold the shown name in ``method`` and the slot in ``SLOT`` (see ``tables.records_of``)."""
    pairs = sorted(
        {
            (str(r.get("backend")), str(r.get("method")), str(r.get(SLOT)))
            for r in records
            if r.get(SLOT) is not None and str(r.get("method")).lower() != str(r.get(SLOT)).lower()
        }
    )
    if not pairs:
        return ""
    return "methods by their libraries' own names: " + "; ".join(
        f"{backend} {own} fills odebench's {slot} slot" for backend, own, slot in pairs
    )


def _reanchors(record: dict[str, Any]) -> bool:
    if record.get("reanchor") in (True, 1) or record.get("backend") in _REANCHORING_BACKENDS:
        return True
    for column in ("params", "extra"):
        holder = as_dict(record.get(column))
        if holder.get("reanchor") or as_dict(holder.get("options")).get("reanchor"):
            return True
    return False


def gradient_variant(record: dict[str, Any]) -> Any:
    """The gradient column as the report names it: a backsolve that re-anchors (the ``reanchor``
    column, ``reanchor`` in ``params``/``extra`` or their ``options``, or a re-anchoring backend) gets
    ``+reanchor``."""
    gradient = record.get("gradient")
    if isinstance(gradient, str) and gradient.startswith("backsolve") and REANCHOR not in gradient:
        return gradient + REANCHOR if _reanchors(record) else gradient
    return gradient


def _budget(record: dict[str, Any]) -> float | None:
    rtol, dtype = record.get("rtol"), getattr(torch, str(record.get("dtype")), None)
    if not isinstance(rtol, (int, float)) or not isinstance(dtype, torch.dtype):
        return None
    return default_budget(float(rtol), dtype)


def over_budget(record: dict[str, Any]) -> bool:
    """Whether a finished run's ``grad_error`` exceeds the gate's default budget,
    ``max(100 rtol, 1000 eps(dtype))`` (``odebench.testing.default_budget``)."""
    error, budget = record.get("grad_error"), _budget(record)
    return (
        record.get("status") == "ok" and isinstance(error, (int, float)) and budget is not None
        and error > budget
    )


def budget_note() -> str:
    """The line under a table that marks runs over the gradient-error budget."""
    return (
        f"{OVER_BUDGET}: finished, but the gradient error exceeds the gate's budget "
        f"max({BUDGET_RTOL_FACTOR:g} x rtol, {BUDGET_EPS_FACTOR:g} x eps(dtype))"
    )

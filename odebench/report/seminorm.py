"""What the seminorm saves: backward NFE (and wall) at equal gradient error, from the ``seminorm``
study's rows.

Each curve is one configuration's points over the tolerances (backward cost against
``grad_error``, tightening rtol). A curve without the seminorm is paired with the curve of the
same case, library, gradient method and ``adjoint_norm`` with it (where the seminorm makes the
norm irrelevant, as for interpolated's ``per_part``, with the "mixed" one). At each finished
point of the plain curve, the seminorm curve's cost at that point's gradient error is
interpolated log-log (:func:`odebench.report.accuracy.cost_at`); the saving there is
``1 - cost_with / cost_without`` (positive: the seminorm is cheaper). Points the other curve
does not bracket give no number. The same-tolerance saving (no interpolation) is kept too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from odebench.report.accuracy import cost_at
from odebench.report.labels import as_dict

__all__ = ["Pair", "adjoint_norm", "pairs"]

#: The norm a seminorm curve falls back to when none has the plain curve's own.
FALLBACK_NORM = "mixed"


@dataclass
class Pair:
    """One plain curve and its seminorm partner, and the savings measured between them.

    ``case``: (problem, T, state_dim, n_params, method, dtype, device, atol / rtol);
    ``line``: (backend,
    gradient without its ``_seminorm``, adjoint_norm of the plain curve). Savings are
    fractions, one per plain point the seminorm curve brackets (``nfe``, ``wall``) or per
    tolerance both ran (``same_tol``).
    """

    case: tuple[Any, ...]
    line: tuple[str, str, str]
    nfe: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    same_tol: list[float] = field(default_factory=list)

    @property
    def problem(self) -> str:
        return str(self.case[0])

    @property
    def label(self) -> str:
        """``backend gradient adjoint_norm, atol/rtol r``, e.g. "odebench backsolve per_part,
        atol/rtol 0.01"."""
        return f"{' '.join(self.line)}, atol/rtol {self.case[-1]:g}"


def adjoint_norm(record: dict[str, Any]) -> str:
    """The backward error norm a row ran: its ``adjoint_norm`` column (lifted from ``params``)
    or ``params["adjoint_norm"]``; "mixed" when neither says."""
    value = record.get("adjoint_norm") or as_dict(record.get("params")).get("adjoint_norm")
    return str(value or FALLBACK_NORM)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _present(value: Any) -> Any:
    """``value``, with a missing one (None, NaN: a DataFrame's empty cell) as None."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _case(record: dict[str, Any]) -> tuple[Any, ...]:
    params = as_dict(record.get("params"))
    return (*(_present(record.get(c)) for c in ("problem", "T", "state_dim")),
            params.get("n_params"), record.get("method_slot") or record.get("method"),
            record.get("dtype"), record.get("device"), float(params.get("atol_ratio", 1.0)))


def _curves(records: Iterable[dict[str, Any]]
            ) -> dict[tuple[tuple[Any, ...], tuple[str, str, str], bool], list[dict[str, Any]]]:
    """Finished rows by (case, line, seminorm), each curve sorted by tightening rtol."""
    curves: dict[tuple[tuple[Any, ...], tuple[str, str, str], bool], list[dict[str, Any]]] = {}
    for record in records:
        if not str(record.get("status", "")).startswith("ok"):
            continue
        gradient = str(record.get("gradient")).replace("_seminorm", "")
        line = (str(record.get("backend")), gradient, adjoint_norm(record))
        curves.setdefault((_case(record), line, bool(record.get("seminorm"))), []).append(record)
    for points in curves.values():
        points.sort(key=lambda r: -float(r.get("rtol") or 0.0))
    return curves


def _saving(points: list[dict[str, Any]], column: str, cost: float, error: float) -> float | None:
    """``1 - c / cost`` where ``c`` is the cost of ``points`` interpolated at ``error``."""
    costs = [_number(p.get(column)) or math.nan for p in points]
    errors = [_number(p.get("grad_error")) or math.nan for p in points]
    at = cost_at(costs, errors, error)
    return None if at.cost is None else 1.0 - at.cost / cost


def pairs(records: Iterable[dict[str, Any]]) -> list[Pair]:
    """Every plain curve with a seminorm partner, with its savings (see the module doc), in
    (case, line) order."""
    curves = _curves(records)
    out = []
    for (case, line, semi), plain in sorted(curves.items(), key=lambda kv: repr(kv[0][:2])):
        if semi:
            continue
        partner = curves.get((case, line, True)) or curves.get(
            (case, (*line[:2], FALLBACK_NORM), True))
        if partner is None:
            continue
        pair = Pair(case, line)
        by_rtol = {p.get("rtol"): p for p in partner}
        for point in plain:
            error = _number(point.get("grad_error"))
            for column, into in (("nfe_backward", pair.nfe), ("wall_backward_s", pair.wall)):
                cost = _number(point.get(column))
                if error is not None and cost is not None:
                    saving = _saving(partner, column, cost, error)
                    if saving is not None:
                        into.append(saving)
            other = by_rtol.get(point.get("rtol"))
            cost = _number(point.get("nfe_backward"))
            if other is not None and cost is not None and _number(other.get("nfe_backward")):
                pair.same_tol.append(1.0 - float(other["nfe_backward"]) / cost)
        out.append(pair)
    return out

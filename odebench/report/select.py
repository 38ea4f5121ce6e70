"""One row per table cell or plotted point, or a declared aggregate of several.

Every table and figure spec names the dimensions that identify one of its
cells or points (the table's row keys and columns; a figure's panel, line,
style and position along the line). :func:`cells` groups the rows by those
dimensions and refuses, with :class:`AmbiguousCellError`, a group of more than
one row unless the spec names an :class:`Aggregate` over a further dimension
(e.g. ``seed``); then the rows of a group must differ in that dimension, and
:func:`summarize` gives the median with its interquartile range.

Records are dicts of hashable values (missing as ``None``), as
``odebench.report.tables`` makes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from odebench.errors import InvalidInputError
from odebench.report.labels import OVER_BUDGET

__all__ = [
    "Aggregate",
    "AmbiguousCellError",
    "Summary",
    "cells",
    "differing",
    "finished",
    "matches",
    "pool",
    "summarize",
    "where",
]

#: Columns that name a grid dimension: listed first among the columns in which rows differ.
_DIMENSIONS = ("study", "problem", "T", "backend", "method", "gradient", "seminorm", "rtol",
               "atol", "dtype", "device", "width", "batch", "state_dim", "model", "seed", "params")
#: Columns that say when and where a row was measured: listed last.
_PROVENANCE = ("commit", "timestamp", "hostname")


class AmbiguousCellError(InvalidInputError):
    """Two or more rows would feed one table cell or plotted point and no aggregation is named.

    The message names the table or figure, the cell's key and the columns in which
    the colliding rows differ (the dimension the spec forgot to declare).
    """


@dataclass(frozen=True)
class Aggregate:
    """Pool the rows of one cell over ``over`` (a dimension such as ``seed`` or ``repeat``)
    by their median; the spread shown is the interquartile range."""

    over: str
    stat: str = "median"

    def __post_init__(self) -> None:
        if self.stat != "median":
            raise InvalidInputError(f"Aggregate.stat={self.stat!r}: only 'median' is supported")

    def note(self, counts: Sequence[int]) -> str:
        """E.g. "median of 3 seeds (spread: interquartile range)" for cells of ``counts`` rows."""
        low, high = min(counts), max(counts)
        n = str(low) if low == high else f"{low}-{high}"
        return f"{self.stat} of {n} {self.over}s per cell (spread: interquartile range)"


@dataclass(frozen=True)
class Summary:
    """The median of a cell's values, its quartiles and the number of values pooled."""

    median: float
    q1: float
    q3: float
    n: int


def differing(records: Sequence[dict[str, Any]]) -> list[str]:
    """The columns whose values are not all equal across ``records``: grid dimensions first,
    provenance last."""
    names = list(dict.fromkeys(name for record in records for name in record))
    varying = [n for n in names if len({repr(r.get(n)) for r in records}) > 1]
    return sorted(varying, key=lambda n: (n not in _DIMENSIONS, n in _PROVENANCE, names.index(n)))


def cells(
    records: Sequence[dict[str, Any]],
    dims: Sequence[str],
    what: str,
    aggregate: Aggregate | None = None,
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """``records`` grouped by their values of ``dims``, in first-seen order.

    Raises :class:`AmbiguousCellError` (naming ``what``, the cell and the columns in
    which its rows differ) when a group holds more than one record and ``aggregate``
    is ``None``, or when two records of a group share the value of ``aggregate.over``.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(tuple(record.get(d) for d in dims), []).append(record)
    for key, members in groups.items():
        if len(members) == 1:
            continue
        if aggregate is not None:
            pooled = [m.get(aggregate.over) for m in members]
            if None not in pooled and len(set(pooled)) == len(pooled):
                continue
        cell = ", ".join(f"{d}={v!r}" for d, v in zip(dims, key, strict=True))
        pool = f" (aggregating over {aggregate.over!r})" if aggregate else ""
        raise AmbiguousCellError(
            f"{what}: {len(members)} rows feed the cell {{{cell}}}{pool}; they differ in "
            f"{differing(members) or ['nothing: duplicate rows']}. Declare the dimension that "
            "tells them apart in the spec (a key, a column or a `where`), or name an aggregation."
        )
    return groups


def summarize(values: Sequence[Any]) -> Summary | None:
    """Median and quartiles of the finite numbers among ``values``; ``None`` if there are none."""
    numbers = [
        float(v) for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if not numbers:
        return None
    q1, median, q3 = np.percentile(numbers, [25, 50, 75])
    return Summary(float(median), float(q1), float(q3), len(numbers))


class Excluding(tuple):
    """A ``where`` condition given by the values it leaves out: ``("model", Excluding(("x",)))``
    keeps every row whose model is not "x"."""


def matches(value: Any, allowed: Sequence[Any]) -> bool:
    """Whether ``value`` is one of ``allowed`` (for :class:`Excluding`, none of them); floats
    match to a relative 1e-9."""
    if isinstance(allowed, Excluding):
        return not matches(value, tuple(allowed))
    return any(
        value == option
        or (
            isinstance(value, float)
            and isinstance(option, (int, float))
            and math.isclose(value, option, rel_tol=1e-9)
        )
        for option in allowed
    )


def where(
    records: Sequence[dict[str, Any]], conditions: Sequence[tuple[str, Sequence[Any]]]
) -> list[dict[str, Any]]:
    """The records whose every condition's column takes one of its allowed values (the
    dimensions a spec fixes), e.g. ``(("dtype", ("float64",)),)``."""
    return [r for r in records if all(matches(r.get(c), allowed) for c, allowed in conditions)]


def finished(record: dict[str, Any]) -> bool:
    """Whether the row's run finished (``ok``, or ``ok (over budget)``)."""
    return record.get("status") in ("ok", OVER_BUDGET)


def pool(members: Sequence[dict[str, Any]], values: Sequence[str],
         aggregate: Aggregate) -> dict[str, Any]:
    """One record for the cell of ``members``: each of ``values`` as the median over the
    finished members, its quartiles in ``<value>_q1`` / ``<value>_q3``, and ``n_<over>`` the
    number of rows pooled; the status is the members' statuses joined by "/" when they differ."""
    pooled = dict(members[0])
    for value in values:
        summary = summarize([m.get(value) for m in members if finished(m)])
        pooled[value] = summary.median if summary else None
        pooled[f"{value}_q1"] = summary.q1 if summary else None
        pooled[f"{value}_q3"] = summary.q3 if summary else None
    pooled[f"n_{aggregate.over}"] = len(members)
    statuses = sorted({str(m.get("status")) for m in members})
    pooled["status"] = "/".join(statuses)
    pooled.pop(aggregate.over, None)
    return pooled

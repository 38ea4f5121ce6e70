"""The headline table: wall time and NFE each backend/method needs to reach a stated error;
and the stiff one: wall time each stiff solver needs to reach 6 and 8 correct digits.

Costs are interpolated log-log on each work-precision curve (``odebench.report.accuracy``),
from the same points the ``equal_accuracy`` figure draws, so table and figure agree.
"""

from __future__ import annotations

import pandas as pd

from odebench.environment import Provenance
from odebench.report import labels
from odebench.report.accuracy import TARGETS
from odebench.report.figures import FIGURES, digits_as_error, equal_accuracy_frame, points
from odebench.report.select import where
from odebench.report.tables import Table, records_of

__all__ = ["STIFF_DIGITS", "equal_accuracy_table", "stiff_equal_accuracy_table"]

_SPEC = next(spec for spec in FIGURES if spec.name == "equal_accuracy")
_COSTS = (("wall_forward_s", "wall_s"), ("nfe_forward", "nfe"))


def _column(short: str, target: float) -> str:
    return f"{short} @ {target:.0e}"


def equal_accuracy_table(rows: pd.DataFrame) -> Table | None:
    """Per problem and backend/method, the forward wall clock (s) and NFE at each of
    ``accuracy.TARGETS`` (relative L2 error at the final time); ``None`` without rows.

    A cell is empty when the curve does not reach the target; the notes say why.
    """
    if "study" not in rows.columns:
        return None
    selected = rows[rows["study"] == _SPEC.study]
    if selected.empty:
        return None
    data = points(selected, _SPEC)
    frames = {short: equal_accuracy_frame(data, _SPEC, cost) for cost, short in _COSTS}
    long = frames["wall_s"].rename(columns={"cost": "wall_s"})
    long = long.assign(nfe=frames["nfe"]["cost"].to_numpy())
    if long.empty or long[["wall_s", "nfe"]].isna().all().all():
        return None
    long = long.rename(columns={"panel_label": "problem", "line_label": "backend/method"})
    long = long[["problem", "backend/method", "target", "wall_s", "nfe", "reason"]]
    wide = []
    for (problem, line), part in long.groupby(["problem", "backend/method"], sort=True):
        by_target = part.set_index("target")
        cells: list[object] = [problem, line]
        for target in TARGETS:
            cells += [by_target.loc[target, short] for _, short in _COSTS]
        wide.append(cells)
    columns = ["problem", "backend/method",
               *(_column(short, t) for t in TARGETS for _, short in _COSTS)]
    frame = pd.DataFrame(wide, columns=columns, dtype=object)
    frame = frame.where(frame.notna(), None)
    records = where(records_of(selected), _SPEC.where)
    reasons = long.loc[long["wall_s"].isna(), "reason"].str.split(" \\(").str[0].value_counts()
    notes = [
        "cost at a target error interpolated log-log between the two tightening tolerances "
        "whose errors bracket it; wall clock forward (s), NFE forward",
        *(f"{n} empty cells: {reason}" for reason, n in sorted(reasons.items())),
    ]
    mapping = labels.method_mapping(records)
    if mapping:
        notes.append(mapping)
    return Table(
        name="equal_accuracy",
        title="Cost at equal accuracy: forward wall clock (s) and NFE to reach a relative error",
        frame=frame,
        fixed=[],
        provenance=Provenance.from_rows(pd.DataFrame.from_records(records)),
        studies=(_SPEC.study,),
        keys=("problem", "backend/method"),
        notes=notes,
        long=long,
    )


_STIFF_SPEC = next(spec for spec in FIGURES if spec.name == "stiff_scd_wall")
#: Correct digits at which the stiff solvers' wall clocks are compared (issue 18, section 2).
STIFF_DIGITS = (6, 8)


def _digits_column(digits: int) -> str:
    return f"wall_s @ {digits} digits"


def stiff_equal_accuracy_table(rows: pd.DataFrame) -> Table | None:
    """Per stiff problem and solver (odebench's stiff methods, SciPy's), the forward wall
    clock (s) to reach each of :data:`STIFF_DIGITS` significant correct digits, interpolated
    log-log on its work-precision curve with error = 10^-scd (float64 forward solves, ordered
    by tightening rtol); ``None`` without rows. A cell the curve does not reach holds the
    reason; ``fastest at`` names the targets at which the solver is the fastest on its problem.
    """
    if "study" not in rows.columns:
        return None
    selected = rows[rows["study"] == _STIFF_SPEC.study]
    if selected.empty:
        return None
    data = digits_as_error(points(selected, _STIFF_SPEC))
    targets = [10.0 ** -d for d in STIFF_DIGITS]
    long = equal_accuracy_frame(data, _STIFF_SPEC, "wall_forward_s", "error_scd", targets)
    if long.empty or long["cost"].isna().all():
        return None
    long = long.rename(columns={"panel_label": "problem", "line_label": "backend/method",
                                "cost": "wall_s"})
    long["digits"] = [STIFF_DIGITS[targets.index(t)] for t in long["target"]]
    reached = long[long["wall_s"].notna()]
    fastest = reached.loc[reached.groupby(["problem", "digits"])["wall_s"].idxmin()]
    long["fastest"] = long.index.isin(fastest.index)
    wide = []
    for (problem, line), part in long.groupby(["problem", "backend/method"], sort=True):
        by_digits = part.set_index("digits")
        cells: list[object] = [problem, line]
        for digits in STIFF_DIGITS:
            cell = by_digits.loc[digits]
            cells.append(cell["wall_s"] if pd.notna(cell["wall_s"]) else cell["reason"])
        wins = [str(d) for d in STIFF_DIGITS if by_digits.loc[d, "fastest"]]
        cells.append(", ".join(wins) + " digits" if wins else "")
        wide.append(cells)
    frame = pd.DataFrame(wide, columns=["problem", "backend/method",
                                        *(_digits_column(d) for d in STIFF_DIGITS), "fastest at"],
                         dtype=object)
    records = where(records_of(selected), _STIFF_SPEC.where)
    sentences = [
        f"at {digits} digits on {problem} the fastest is {line} ({wall:.3g} s)"
        for digits, problem, line, wall in fastest.sort_values(["digits", "problem"])[
            ["digits", "problem", "backend/method", "wall_s"]].itertuples(index=False)
    ]
    notes = [
        "wall clock forward (s) to reach a number of significant correct digits, interpolated "
        "log-log (error = 10^-scd) between the two tightening tolerances that bracket it; "
        "float64 forward solves",
        "; ".join(sentences),
    ]
    mapping = labels.method_mapping(records)
    if mapping:
        notes.append(mapping)
    return Table(
        name="stiff_equal_accuracy",
        title="Stiff problems at equal accuracy: forward wall clock (s) to reach 6 and 8 "
              "significant correct digits",
        frame=frame,
        fixed=[],
        provenance=Provenance.from_rows(pd.DataFrame.from_records(records)),
        studies=(_STIFF_SPEC.study,),
        keys=("problem", "backend/method"),
        notes=notes,
        long=long[["problem", "backend/method", "digits", "target", "wall_s", "fastest",
                   "reason"]],
    )

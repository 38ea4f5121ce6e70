"""The headline table: wall time and NFE each backend/method needs to reach a stated error.

Costs are interpolated log-log on each work-precision curve (``odebench.report.accuracy``),
from the same points the ``equal_accuracy`` figure draws, so table and figure agree.
"""

from __future__ import annotations

import pandas as pd

from odebench.environment import Provenance
from odebench.report import labels
from odebench.report.accuracy import TARGETS
from odebench.report.figures import FIGURES, equal_accuracy_frame, points
from odebench.report.select import where
from odebench.report.tables import Table, records_of

__all__ = ["equal_accuracy_table"]

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

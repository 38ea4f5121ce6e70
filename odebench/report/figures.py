"""Seaborn figures from results rows, each saved as PNG and SVG with a provenance footer.

Each ``FigureSpec`` declares the dimensions that identify a point (panel, line, position
along the line) and those it fixes (``where``); ``points`` refuses two rows for one point
(``odebench.report.select.AmbiguousCellError``) unless the spec names an aggregation. Lines
differ in colour and marker, legends sit outside the axes, every error axis is logarithmic
with error downward (the stiff figures plot 10^-scd), and each figure returns one computed
sentence, ``FigureFile.caption``, for the page.

Figures are drawn on ``matplotlib.figure.Figure`` objects with an Agg canvas,
never through pyplot, so building a report neither needs a display nor changes
the caller's matplotlib backend. A figure is made only when its study has rows
it can plot; log axes drop non-positive values. SVGs carry no date and fixed
element ids so that regenerating unchanged rows gives unchanged files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from matplotlib.transforms import blended_transform_factory

from odebench.environment import Provenance
from odebench.report import seminorm
from odebench.report.accuracy import TARGETS, cost_at
from odebench.report.select import Aggregate, Excluding, cells, finished, pool, where
from odebench.report.tables import as_dict, column_label, format_value, records_of

__all__ = [
    "FIGURES",
    "FigureFile",
    "build_figures",
    "gradient_scaling",
    "lorenz_drift",
    "memory_scaling",
    "models_loss",
    "models_nfe",
    "models_nfe_ratio",
    "overhead",
    "per_sample",
    "save",
    "seminorm_nfe",
    "stiff_nfe",
    "stiff_wall",
    "work_precision_nfe",
    "work_precision_wall",
]

#: Reference line of the overhead bars: the target of the solver-loop overhead ratio,
#: wall / (NFE x one vector-field evaluation).
OVERHEAD_TARGET = 2.0

_OVERHEAD_TITLE = "Solver-loop overhead: wall / (NFE x one vector-field evaluation), 1 thread"

_PANEL_SIZE = (4.2, 3.3)  # inches, one facet
_LEGEND_ROW_IN = 0.22  # inches a row of a legend below the panels takes
_DPI = 150
_FOOTER_BAND_IN = 0.16  # inches kept free at the bottom for the provenance footer


@dataclass
class FigureFile:
    """A written figure: its files (PNG, SVG), the provenance of the rows drawn, and
    ``caption``, one sentence computed from its points (shown under the figure)."""

    name: str
    title: str
    files: list[Path]
    provenance: Provenance
    caption: str = ""


def _positive(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Rows whose ``columns`` are finite and > 0 (the ones a log axis can show)."""
    keep = pd.Series(True, index=frame.index)
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        keep &= values.gt(0) & np.isfinite(values)
    return frame[keep]


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def _label(frame: pd.DataFrame, *columns: str) -> pd.Series:
    """``a/b`` labels from ``columns``, leaving out columns that are all missing."""
    used = [c for c in columns if frame[c].notna().any()]
    return frame[used].astype(str).agg("/".join, axis=1) if used else pd.Series("", frame.index)


def _palette(labels: pd.Series) -> dict[str, tuple[float, float, float]]:
    """A distinct color per label (seaborn's default cycle repeats after 10 colors)."""
    order = sorted(set(labels))
    name = "tab10" if len(order) <= 10 else "tab20" if len(order) <= 20 else "husl"
    return dict(zip(order, sns.color_palette(name, n_colors=len(order)), strict=True))


def _log_axis(ax: Axes, which: str, values: pd.Series) -> None:
    """Log scale on ``which`` ("x" or "y"); minor tick labels only if no power of ten is in range.

    Minor labels on a range that spans a decade overlap and cost a lot of text layout.
    """
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    numbers = pd.to_numeric(values, errors="coerce")
    low, high = math.log10(numbers.min()), math.log10(numbers.max())
    if math.floor(high) >= math.ceil(low):
        axis.set_minor_formatter(NullFormatter())


def _panels(problems: list[str], title: str) -> tuple[Figure, list[Axes]]:
    """A figure with one panel per problem, at most three per row."""
    ncols = min(3, len(problems))
    nrows = math.ceil(len(problems) / ncols)
    figure = Figure(figsize=(_PANEL_SIZE[0] * ncols, _PANEL_SIZE[1] * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for extra in axes[len(problems) :]:
        extra.set_visible(False)
    figure.suptitle(title)
    return figure, axes[: len(problems)]


def _shared_legend(figure: Figure, axes: list[Axes]) -> None:
    """One legend for the figure, from the panel with the most entries."""
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes), key=lambda h: len(h[1]))
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if labels:
        figure.legend(handles, labels, loc="outside right upper", fontsize="small")


def _bars(ax: Axes, data: pd.DataFrame, x: str, y: str, hue: str) -> None:
    """``y`` per ``x`` as bars (one point each), one color per ``hue``, both in sorted order."""
    sns.barplot(
        data=data,
        x=x,
        y=y,
        hue=hue,
        order=sorted(data[x].unique()),
        hue_order=sorted(data[hue].unique()),
        palette=_palette(data[hue]),
        errorbar=None,
        ax=ax,
    )


def _single(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.set_title(title)
    return figure, ax


@dataclass(frozen=True)
class FigureSpec:
    """What one figure shows, and the dimensions that identify each of its points.

    A point is one row (or, with ``aggregate``, the median of the rows that differ only in
    ``aggregate.over``): its panel is given by ``panel``, its line by ``line`` and its place
    along the line by ``along``; ``where`` fixes further dimensions. Two rows with the same
    ``panel + line + along`` values raise ``AmbiguousCellError``. ``draw`` gets the points
    (columns ``panel_label`` and ``line_label`` added) and returns a :class:`Drawing`.
    """

    name: str  # file stem
    study: str
    title: str
    draw: Callable[[pd.DataFrame, FigureSpec], Drawing | None]
    panel: tuple[str, ...] = ("problem", "T")
    line: tuple[str, ...] = ("backend", "method", "dtype", "device")
    along: tuple[str, ...] = ("rtol", "atol")
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    aggregate: Aggregate | None = None
    values: tuple[str, ...] = ()  # the measurements pooled when aggregating

    @property
    def dims(self) -> tuple[str, ...]:
        return (*self.panel, *self.line, *self.along)


@dataclass
class Drawing:
    """A drawn figure and the one computed sentence shown under it (``caption``)."""

    figure: Figure
    caption: str = ""


def _joined(records: list[dict[str, Any]], names: Sequence[str], sep: str) -> list[str]:
    """Per record, the values of those ``names`` that vary over ``records``, joined by ``sep``
    (``name=value`` for a number, ``name`` / ``no name`` for a flag); "" where none varies."""
    varying = [n for n in names if len({r.get(n) for r in records}) > 1]

    def text(record: dict[str, Any], name: str) -> str:
        value = record.get(name)
        if isinstance(value, bool):
            return name if value else f"no {name}"
        shown = format_value(value, name)
        return f"{name}={shown}" if isinstance(value, (int, float)) else shown

    return [sep.join(text(r, n) for n in varying if r.get(n) is not None) for r in records]


def points(rows: pd.DataFrame, spec: FigureSpec) -> pd.DataFrame:
    """The points of ``spec`` from ``rows``: one per row, or per declared aggregate.

    Raises ``AmbiguousCellError`` when two rows would feed one point.
    """
    records = where(records_of(rows), spec.where)
    groups = cells(records, spec.dims, f"figure {spec.name!r}", spec.aggregate)
    if spec.aggregate is None:
        selected = [members[0] for members in groups.values()]
    else:
        selected = [pool(members, spec.values, spec.aggregate) for members in groups.values()]
    frame = pd.DataFrame.from_records(selected) if selected else pd.DataFrame()
    if frame.empty:
        return frame
    panels = [column_label(r, spec.panel) for r in selected] if spec.panel else [""] * len(frame)
    lines = _joined(selected, spec.line, "/")
    return frame.assign(panel_label=panels, line_label=[x or "all" for x in lines])


_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "p", "h", "8", "d", "H")


def _styles(labels: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """A distinct (colour, marker) per label, the same in every panel of a figure."""
    colours = _palette(pd.Series(list(labels)))
    order = sorted(set(labels))
    return {label: (colours[label], _MARKERS[i % len(_MARKERS)]) for i, label in enumerate(order)}


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series(
        np.nan, index=frame.index)


def _lines(ax: Axes, data: pd.DataFrame, x: str, y: str,
           styles: dict[str, tuple[Any, str]], order: Sequence[str]) -> None:
    """One line per ``line_label`` through its points in ``order`` (the along dimensions), with
    the interquartile range as error bars where the points are aggregates."""
    for label, line in data.groupby("line_label", sort=True):
        line = line.sort_values(list(order), ascending=False) if order else line
        colour, marker = styles[label]
        ax.plot(line[x].astype(float), line[y].astype(float), color=colour, marker=marker,
                markersize=5, linewidth=1.2, label=label)
        if f"{y}_q1" in line:
            low = line[y].astype(float) - _numeric(line, f"{y}_q1")
            high = _numeric(line, f"{y}_q3") - line[y].astype(float)
            ax.errorbar(line[x].astype(float), line[y].astype(float), yerr=[low, high],
                        fmt="none", ecolor=colour, elinewidth=0.8, capsize=2)
        spread = _wall_spread(line, x)
        if spread is not None:
            ax.errorbar(line[x].astype(float), line[y].astype(float), xerr=spread, fmt="none",
                        ecolor=colour, elinewidth=0.8, capsize=2)


def _wall_spread(line: pd.DataFrame, x: str) -> list[pd.Series] | None:
    """Horizontal bars for a wall-clock ``x`` whose rows carry the IQR of their timed repeats
    (``<x>_iqr_s``): the IQR's width centred on the median (the rows keep the median and the
    IQR, not the quartiles), clipped to stay positive on the log axis; None without one."""
    column = x.removesuffix("_s") + "_iqr_s"
    if not x.startswith("wall_") or column not in line:
        return None
    half = _numeric(line, column) / 2
    if not half.notna().any():
        return None
    half = half.fillna(0.0)
    centre = line[x].astype(float)
    return [half.clip(upper=0.9 * centre), half]


def _plottable(data: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The finished points with positive, finite ``x`` and ``y`` (both axes are logarithmic)."""
    data = data[[finished(r) for r in data.to_dict("records")]] if not data.empty else data
    return _positive(data, x, y) if not data.empty else data


def _caption_cost(data: pd.DataFrame, x: str, y: str, spec: FigureSpec, what: str,
                  unit: Callable[[float], str]) -> str:
    """The caption naming, per panel, the line with the least ``x`` at error
    :data:`CAPTION_TARGET` (log-log interpolation), e.g. "fewest NFE at error 1e-08 ...: vdp:
    odebench/dop853 (669 evaluations)"."""
    target = CAPTION_TARGET
    parts = []
    for panel, frame in data.groupby("panel_label", sort=True):
        best: tuple[float, str] | None = None
        for label, line in frame.groupby("line_label", sort=True):
            line = line.sort_values(list(spec.along), ascending=False)
            at = cost_at(line[x].astype(float).tolist(), line[y].astype(float).tolist(), target)
            if at.cost is not None and (best is None or at.cost < best[0]):
                best = (at.cost, label)
        prefix = f"{panel}: " if panel else ""
        parts.append(f"{prefix}{best[1]} ({unit(best[0])})" if best else f"{prefix}none reaches it")
    return f"{what} at error {target:.0e} (log-log interpolation): " + "; ".join(parts) + "."


def _seconds(value: float) -> str:
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def _count(value: float) -> str:
    return f"{value:.0f} evaluations"


def _work_precision(data: pd.DataFrame, spec: FigureSpec, x: str, y: str, xlabel: str,
                    ylabel: str, what: str, unit: Callable[[float], str]) -> Drawing | None:
    """Error (log, downward is better) against cost (log), a panel per problem, a line per
    ``spec.line``, a legend outside the axes, and the caption naming the cheapest line."""
    if data.empty:
        return None
    data = _plottable(data, x, y)
    if data.empty:
        return None
    styles = _styles(data["line_label"].tolist())
    panels = sorted(data["panel_label"].unique())
    figure, axes = _panels(panels, spec.title)
    for ax, panel in zip(axes, panels, strict=True):
        frame = data[data["panel_label"] == panel]
        _lines(ax, frame, x, y, styles, spec.along)
        _log_axis(ax, "x", frame[x])
        _log_axis(ax, "y", frame[y])
        ax.set(title=panel, xlabel=xlabel, ylabel=ylabel)
    _shared_legend(figure, axes)
    caption = _caption_cost(data, x, y, spec, what, unit)
    if _wall_spread(data, x) is not None:
        caption += (" Horizontal bars: the interquartile range of each point's timed repeats "
                    "(its width, centred on the median).")
    return Drawing(figure, caption)


def work_precision_nfe(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Solution error against forward NFE, log-log, per problem."""
    return _work_precision(data, spec, "nfe_forward", "sol_error", "function evaluations (forward)",
                           "relative L2 error", "fewest NFE", _count)


def work_precision_wall(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Solution error against forward wall clock, log-log, per problem."""
    return _work_precision(data, spec, "wall_forward_s", "sol_error", "wall clock, forward (s)",
                           "relative L2 error", "least wall time", _seconds)


def digits_as_error(data: pd.DataFrame) -> pd.DataFrame:
    """``error_scd`` = 10^-scd, the error the significant correct digits stand for, so that the
    stiff figures have error downward like every other figure."""
    if data.empty:
        return data
    return data.assign(error_scd=10.0 ** -_numeric(data, "scd"))


def stiff_wall(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Error 10^-scd against forward wall clock, log-log, per stiff problem (float64)."""
    return _work_precision(digits_as_error(data), spec, "wall_forward_s", "error_scd",
                           "wall clock, forward (s)", "error 10^-scd", "least wall time",
                           _seconds)


def stiff_nfe(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Error 10^-scd against forward NFE, log-log, per stiff problem (float64)."""
    return _work_precision(digits_as_error(data), spec, "nfe_forward", "error_scd",
                           "function evaluations (forward)", "error 10^-scd", "fewest NFE",
                           _count)


def gradient_wall(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Gradient error against backward wall clock, log-log, a line per library and gradient."""
    return _work_precision(data, spec, "wall_backward_s", "grad_error", "wall clock, backward (s)",
                           "gradient relative L2 error", "least backward wall time", _seconds)


def gradient_nfe(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Gradient error against forward + backward NFE, log-log, a line per library and gradient."""
    if data.empty:
        return None
    total = _numeric(data, "nfe_forward") + _numeric(data, "nfe_backward")
    return _work_precision(data.assign(nfe_total=total), spec, "nfe_total", "grad_error",
                           "NFE, forward + backward",
                           "gradient relative L2 error", "fewest NFE", _count)


def equal_accuracy(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """The headline: wall time to reach each target error (relative L2 at the final time), per
    problem (bars, log y), a bar per backend/method; a missing bar did not reach the target."""
    frame = equal_accuracy_frame(data, spec, "wall_forward_s")
    frame = frame[frame["cost"].notna()] if not frame.empty else frame
    if frame.empty:
        return None
    targets = [t for t in TARGETS if (frame["target"] == t).any()]
    figure, axes = _panels([f"error {t:.0e}" for t in targets], spec.title)
    styles = _styles(frame["line_label"].tolist())
    hue_order = sorted(styles)
    for ax, target in zip(axes, targets, strict=True):
        part = frame[frame["target"] == target]
        sns.barplot(data=part, x="panel_label", y="cost", hue="line_label",
                    order=sorted(frame["panel_label"].unique()), hue_order=hue_order,
                    palette={k: v[0] for k, v in styles.items()}, errorbar=None, ax=ax)
        ax.set_yscale("log")
        ax.set(title=f"to reach relative error {target:.0e}", xlabel="problem",
               ylabel="wall clock, forward (s)")
        ax.tick_params(axis="x", labelrotation=30)
    _shared_legend(figure, axes)
    parts = []
    for target in targets:
        part = frame[frame["target"] == target]
        wins = part.loc[part.groupby("panel_label")["cost"].idxmin()]
        counts = wins["line_label"].value_counts()
        parts.append(f"at {target:.0e} the fastest on {counts.iloc[0]} of {len(wins)} problems "
                     f"is {counts.index[0]}")
    return Drawing(figure, "Wall time to a stated error, interpolated log-log on each "
                   "work-precision curve: " + "; ".join(parts) + ".")


def equal_accuracy_frame(data: pd.DataFrame, spec: FigureSpec, cost: str,
                         error: str = "sol_error",
                         targets: Sequence[float] = TARGETS) -> pd.DataFrame:
    """Per panel, line and target error (one of ``targets``, in the units of the ``error``
    column): the interpolated ``cost`` (``None`` with a reason when the curve does not reach
    the target)."""
    out = []
    if data.empty:
        return pd.DataFrame(columns=["panel_label", "line_label", "target", "cost", "reason"])
    data = data[[finished(r) for r in data.to_dict("records")]]
    for (panel, label), line in data.groupby(["panel_label", "line_label"], sort=True):
        line = line.sort_values(list(spec.along), ascending=False)
        costs = _numeric(line, cost).tolist()
        errors = _numeric(line, error).tolist()
        for target in targets:
            at = cost_at(costs, errors, target)
            out.append((panel, label, target, at.cost, at.reason))
    return pd.DataFrame(out, columns=["panel_label", "line_label", "target", "cost", "reason"])


def lorenz_drift(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Gradient error per library and gradient method, and backsolve's reconstruction error,
    against T (log y). Stopped runs are marked with a red cross at the top of the axes."""
    if data.empty:
        return None
    data = data[_numeric(data, "T").notna()]
    figure, ax = _single(spec.title)
    records = data.to_dict("records")
    ok = data[[finished(r) for r in records]]
    errors = _positive(ok, "grad_error")
    styles = _styles(data["line_label"].tolist())
    if not errors.empty:
        _lines(ax, errors, "T", "grad_error", styles, ())
    recon = _positive(ok, "recon_error")
    for label, line in recon.groupby("line_label", sort=True):
        line = line.sort_values("T")
        ax.plot(line["T"].astype(float), line["recon_error"].astype(float), color=styles[label][0],
                linestyle="--", marker=styles[label][1], markerfacecolor="none",
                label=f"{label}: reconstruction error")
    stopped = data[[not finished(r) for r in records]]
    if not stopped.empty:
        ax.scatter(stopped["T"].astype(float), [0.97] * len(stopped), marker="X", color="tab:red",
                   transform=blended_transform_factory(ax.transData, ax.transAxes),
                   clip_on=False, zorder=5,
                   label="stopped run (" + ", ".join(sorted(set(stopped["status"]))) + ")")
    if not errors.empty or not recon.empty:
        _log_axis(ax, "y", pd.concat([errors["grad_error"], recon["recon_error"]]))
    ax.set(xlabel="final time T", ylabel="relative L2 error")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return Drawing(figure, _drift_caption(errors))


#: The gradient error at which the Lorenz caption says where each method's error passes.
DRIFT_THRESHOLD = 1e-3


def _drift_caption(errors: pd.DataFrame) -> str:
    """Per line, the smallest T whose gradient error exceeds :data:`DRIFT_THRESHOLD`."""
    parts = []
    for label, line in errors.groupby("line_label", sort=True):
        above = line[line["grad_error"].astype(float) > DRIFT_THRESHOLD]
        parts.append(f"{label} at T={above['T'].astype(float).min():g}" if not above.empty
                     else f"{label} not up to T={line['T'].astype(float).max():g}")
    return f"Gradient error first above {DRIFT_THRESHOLD:.0e}: " + "; ".join(parts) + "."


def memory_scaling(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Bytes saved for backward against T, a line per library and gradient method, a panel per
    model size (width, batch, state dimension) measured at more than one T, log y."""
    data = _plottable(data, "T", "saved_bytes") if not data.empty else data
    if data.empty:
        return None
    data = data[data.groupby("panel_label")["T"].transform("nunique") > 1]
    if data.empty:
        return None
    styles = _styles(data["line_label"].tolist())
    panels = sorted(data["panel_label"].unique())
    figure, axes = _panels(panels, spec.title)
    growth = []
    for ax, panel in zip(axes, panels, strict=True):
        frame = data[data["panel_label"] == panel]
        _lines(ax, frame, "T", "saved_bytes", styles, ("T",))
        _log_axis(ax, "y", frame["saved_bytes"])
        ax.set(title=panel, xlabel="final time T", ylabel="bytes saved for backward")
        for label, line in frame.groupby("line_label", sort=True):
            line = line.sort_values("T")
            ratio = float(line["saved_bytes"].iloc[-1]) / float(line["saved_bytes"].iloc[0])
            growth.append(f"{label} x{ratio:.3g} (T {line['T'].iloc[0]:g} -> "
                          f"{line['T'].iloc[-1]:g}{', ' + panel if len(panels) > 1 else ''})")
    _shared_legend(figure, axes)
    return Drawing(figure, "Growth of the bytes saved for backward: " + "; ".join(growth) + ".")


def overhead(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Bars of overhead_ratio (wall / (NFE x one vector-field evaluation)) per backend for each
    problem, with a dashed line at the target ratio of 2.0."""
    if data.empty:
        return None
    data = data[[finished(r) for r in data.to_dict("records")]]
    data = data[_numeric(data, "overhead_ratio").notna()]
    if data.empty:
        return None
    data = data.assign(overhead_ratio=data["overhead_ratio"].astype(float))
    figure, ax = _single(spec.title)
    _bars(ax, data, "panel_label", "overhead_ratio", "line_label")
    ax.axhline(OVERHEAD_TARGET, color="k", linestyle="--", linewidth=1,
               label=f"target {OVERHEAD_TARGET:.1f}")
    ax.set(xlabel="problem", ylabel="wall / (NFE x one evaluation)")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    worst = data.loc[data["overhead_ratio"].idxmax()]
    return Drawing(figure, f"Largest overhead ratio: {worst['line_label']} on "
                   f"{worst['panel_label']}, {worst['overhead_ratio']:.2f}.")


def _per_iteration(rows: pd.DataFrame, entry: str) -> pd.DataFrame:
    """Columns model, gradient, iteration (from 1) and value, from the list ``extra[entry]``."""
    records = [
        (row["panel_label"], str(row["line_label"]), iteration, value)
        for row in rows.to_dict("records")
        for iteration, value in enumerate(as_dict(row.get("extra")).get(entry) or [], start=1)
    ]
    frame = pd.DataFrame(records, columns=["model", "gradient", "iteration", "value"])
    return frame.assign(value=pd.to_numeric(frame["value"], errors="coerce"))


def _per_model(
    data: pd.DataFrame, title: str, ylabel: str, style: str | None, log_y: bool
) -> Figure:
    """Lines of value against iteration, hue gradient (and ``style`` if given), a panel per model.

    With ``log_y`` a panel whose values are all finite and positive gets a log y axis.
    """
    palette = _palette(data["gradient"])
    models = sorted(data["model"].unique())
    figure, axes = _panels(models, title)
    for ax, model in zip(axes, models, strict=True):
        panel = data[data["model"] == model]
        sns.lineplot(
            data=panel,
            x="iteration",
            y="value",
            hue="gradient",
            palette=palette,
            style=style,
            style_order=["forward", "backward"] if style else None,
            dashes={"forward": "", "backward": (4, 2)} if style else True,
            estimator=None,
            ax=ax,
        )
        if log_y and len(_positive(panel, "value")) == len(panel):
            _log_axis(ax, "y", panel["value"])
        ax.set(title=model, xlabel="training iteration", ylabel=ylabel)
    _shared_legend(figure, axes)
    return figure


def _finished_runs(data: pd.DataFrame) -> pd.DataFrame:
    return data[[finished(r) for r in data.to_dict("records")]] if not data.empty else data


def models_loss(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Training loss against iteration (``extra["losses"]``), a panel per model, a line per
    gradient. The y axis is logarithmic in a panel whose losses are all finite and positive."""
    frame = _per_iteration(_finished_runs(data), "losses").dropna(subset=["value"])
    if frame.empty:
        return None
    return Drawing(_per_model(frame, spec.title, "training loss", style=None, log_y=True))


def models_nfe(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Function evaluations per training iteration, forward (solid) and backward (dashed),
    a panel per model that calls an ODE solver, a line per gradient."""
    runs = _finished_runs(data)
    frame = pd.concat(
        [
            _per_iteration(runs, "nfe_forward_per_iter").assign(**{"pass": "forward"}),
            _per_iteration(runs, "nfe_backward_per_iter").assign(**{"pass": "backward"}),
        ]
    ).dropna(subset=["value"])
    solved = frame.loc[(frame["pass"] == "forward") & (frame["value"] > 0), "model"].unique()
    frame = frame[frame["model"].isin(solved)]
    if frame.empty:
        return None
    return Drawing(_per_model(frame, spec.title, "NFE per iteration", style="pass", log_y=False))


def models_nfe_ratio(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Bars of backward NFE / forward NFE over training per model, a bar per gradient."""
    runs = _finished_runs(data)
    if runs.empty:
        return None
    frame = runs.assign(
        ratio=pd.to_numeric(
            [as_dict(e).get("nfe_backward_over_forward") for e in runs["extra"]], errors="coerce"
        ),
    ).dropna(subset=["ratio"])
    if frame.empty:
        return None
    figure, ax = _single(spec.title)
    _bars(ax, frame, "panel_label", "ratio", "line_label")
    ax.set(xlabel="model", ylabel="NFE backward / NFE forward")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize="small", title="gradient", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ratios = frame["ratio"].astype(float)
    return Drawing(figure, f"Backward / forward NFE over training: {ratios.min():.2f} to "
                   f"{ratios.max():.2f} across {len(frame)} runs (paper, Fig. 3: about 0.5).")


def _size_axis(panel: pd.DataFrame) -> tuple[str, str, str]:
    """The column a gradient_scaling panel's x axis shows, its axis label and its name in the
    caption: the number of parameters along the ``params`` axis, the state size along
    ``state``."""
    if (panel["axis"] == "params").all():
        return "n_params", "number of parameters", "parameters"
    return "state_dim", "state size (numbers in the state)", "state size"


def _crossovers(winner: pd.Series) -> list[str]:
    """"between W and X: A -> B" for each pair of consecutive sizes (``winner``'s index,
    ascending) between which the winning line changes from A to B."""
    sizes, names = winner.index.tolist(), winner.tolist()
    return [f"between {low:g} and {high:g}: {a} -> {b}"
            for low, high, a, b in zip(sizes, sizes[1:], names, names[1:], strict=False)
            if a != b]


def gradient_scaling(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Forward + backward wall clock against size, log-log, a panel per axis and problem
    (x: number of parameters, or state size), a line per library and gradient method; the
    caption names the winner (least total wall among the finished runs) at each size and the
    sizes at which it changes."""
    if data.empty or "axis" not in data:
        return None
    data = data[data["axis"].notna()]
    parts = [_plottable(panel, _size_axis(panel)[0], "wall_total_s")
             for _, panel in data.groupby("panel_label", sort=True)]
    parts = [part for part in parts if not part.empty]
    if not parts:
        return None
    styles = _styles(pd.concat(parts)["line_label"].tolist())
    figure, axes = _panels([part["panel_label"].iloc[0] for part in parts], spec.title)
    sentences = []
    for ax, panel in zip(axes, parts, strict=True):
        x, xlabel, noun = _size_axis(panel)
        _lines(ax, panel, x, "wall_total_s", styles, (x,))
        best = panel.loc[panel.groupby(x)["wall_total_s"].idxmin()].set_index(x).sort_index()
        ax.scatter(best.index.astype(float), best["wall_total_s"].astype(float), s=140,
                   facecolors="none", edgecolors="k", linewidths=1.2, zorder=5,
                   label="winner at this size")
        _log_axis(ax, "x", panel[x])
        _log_axis(ax, "y", panel["wall_total_s"])
        ax.set(title=panel["panel_label"].iloc[0], xlabel=xlabel,
               ylabel="wall clock, forward + backward (s)")
        winner = best["line_label"]
        wins = ", ".join(f"{size:g}: {label} ({_seconds(float(best.loc[size, 'wall_total_s']))})"
                         for size, label in winner.items())
        changes = _crossovers(winner)
        sentences.append(f"{panel['panel_label'].iloc[0]}, by {noun}: {wins}; the winner "
                         + (f"changes {'; '.join(changes)}" if changes else "never changes"))
    _shared_legend(figure, axes)
    return Drawing(figure, "Least forward + backward wall per size (finished runs): "
                   + ". ".join(sentences) + ".")


def _legend_below(figure: Figure) -> None:
    """Move the figure's shared legend under the panels, in two columns, the figure made
    taller by its rows and at least two panels wide (long line labels beside a single panel
    would squeeze it to nothing)."""
    if not figure.legends:
        return
    legend = figure.legends[0]
    handles, names = legend.legend_handles, [text.get_text() for text in legend.get_texts()]
    legend.remove()
    width, height = figure.get_size_inches()
    figure.set_size_inches(max(width, 2 * _PANEL_SIZE[0]),
                           height + _LEGEND_ROW_IN * math.ceil(len(names) / 2))
    figure.legend(handles, names, loc="outside lower center", ncols=2, fontsize="small")


def seminorm_nfe(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Gradient error against backward NFE, log-log, a panel per case, a line per library,
    gradient method, backward error norm and seminorm; the caption gives, per case, the
    backward NFE the seminorm saves at equal gradient error against the per-part norm
    (:mod:`odebench.report.seminorm`)."""
    drawing = _work_precision(data, spec, "nfe_backward", "grad_error", "NFE, backward",
                              "gradient relative L2 error", "fewest backward NFE", _count)
    if drawing is None:
        return None
    _legend_below(drawing.figure)
    for ax in drawing.figure.axes:  # the panel names its case, atol/rtol included: long
        ax.title.set_fontsize("small")
    parts = []
    for pair in seminorm.pairs(data.to_dict("records")):
        if pair.line[2] == "per_part" and pair.nfe:
            parts.append(f"{pair.problem} (state {pair.case[2]}): {pair.label} "
                         f"{round(100 * float(np.median(pair.nfe))):d}%")
    drawing.caption = ("Backward NFE the seminorm saves at equal gradient error against the "
                       "per-part norm (median over the points the curves share; negative: it "
                       "costs more): " + ("; ".join(parts) if parts else "no pair of curves "
                                          "overlaps") + ".")
    return drawing


def _extra_number(data: pd.DataFrame, name: str) -> pd.Series:
    """The entry ``name`` of each row's ``extra`` dict, as numbers (NaN where absent)."""
    return pd.to_numeric(pd.Series([as_dict(e).get(name) for e in data["extra"]],
                                   index=data.index), errors="coerce")


def per_sample(data: pd.DataFrame, spec: FigureSpec) -> Drawing | None:
    """Steps per sample (mean solid, max dashed) and forward wall against batch size, log-log,
    a line per library and batching mode; the caption gives the joint / per-sample ratio of
    mean steps per sample at the largest batch."""
    if data.empty or "extra" not in data:
        return None
    data = _finished_runs(data)
    if data.empty:
        return None
    data = data.assign(steps_mean=_extra_number(data, "steps_per_sample_mean"),
                       steps_max=_extra_number(data, "steps_per_sample_max"))
    steps = _plottable(data, "batch", "steps_mean")
    wall = _plottable(data, "batch", "wall_forward_s")
    if steps.empty and wall.empty:
        return None
    styles = _styles(data["line_label"].tolist())
    figure, (ax_steps, ax_wall) = _panels(["steps", "wall"], spec.title)
    for label, line in steps.groupby("line_label", sort=True):
        line = line.sort_values("batch")
        colour, marker = styles[label]
        ax_steps.plot(line["batch"].astype(float), line["steps_mean"], color=colour,
                      marker=marker, label=f"{label} (mean)")
        ax_steps.plot(line["batch"].astype(float), line["steps_max"], color=colour,
                      marker=marker, linestyle="--", markerfacecolor="none",
                      label=f"{label} (max)")
    if not wall.empty:
        _lines(ax_wall, wall, "batch", "wall_forward_s", styles, ())
    for ax, frame, column in ((ax_steps, steps, "steps_mean"),
                              (ax_wall, wall, "wall_forward_s")):
        if not frame.empty:
            _log_axis(ax, "x", frame["batch"])
            _log_axis(ax, "y", frame[column])
    ax_steps.set(title="steps per sample (max dashed)", xlabel="batch size",
                 ylabel="steps per sample")
    ax_wall.set(title="wall clock, forward (s)", xlabel="batch size", ylabel="wall clock (s)")
    handles, names = ax_steps.get_legend_handles_labels()
    if names:  # centred at the side: at the top it would run into the title
        figure.legend(handles, names, loc="outside right center", fontsize="small")
    return Drawing(figure, _per_sample_caption(steps))


def _per_sample_caption(steps: pd.DataFrame) -> str:
    """At the largest batch some library ran in both modes: per such library the joint and
    per-sample mean steps per sample and their ratio, and the other lines' means there."""
    means = steps.pivot_table(index="batch", columns=["backend", "batching"],
                              values="steps_mean", aggfunc="first")
    both = [b for b in means.columns.get_level_values(0).unique()
            if {(b, "joint"), (b, "per_sample")} <= set(means.columns)]
    batches = [batch for batch in means.index
               if any(means.loc[batch, [(b, "joint"), (b, "per_sample")]].notna().all()
                      for b in both)]
    if not batches:
        return "Steps per sample against batch size (no library ran both modes at one batch)."
    batch = max(batches)
    at = means.loc[batch].dropna()
    parts = [f"{b} joint {at[(b, 'joint')]:.4g} vs per-sample {at[(b, 'per_sample')]:.4g}, "
             f"ratio {at[(b, 'joint')] / at[(b, 'per_sample')]:.3g}"
             for b in both if (b, "joint") in at and (b, "per_sample") in at]
    parts += [f"{b} ({mode}) {value:.4g}" for (b, mode), value in at.items() if b not in both]
    return (f"Mean accepted steps per sample at batch {batch:g}, the largest with both modes: "
            + "; ".join(parts) + ".")


#: The error at which work-precision captions name the cheapest line.
CAPTION_TARGET = 1e-8

_SETTINGS = ("rtol", "atol", "dtype", "device")
_FORWARD = (("gradient", (None,)),)  # forward solves only
# trained models: the models study's claim rows (one training step or a test-time solve each)
# have no training curve
TRAINED_MODELS = Excluding(("odenet_test_tol", "resnet_memory", "odenet_memory"))
_MODELS = dict(panel=("model",), line=("gradient", "backend", "method", "problem", *_SETTINGS),
               along=(), where=(("seed", (0, None)), ("model", TRAINED_MODELS)))
_GRADIENT_LINE = ("backend", "gradient", "method", "seminorm", "dtype", "device")

#: The figures of a report, in order.
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("equal_accuracy", "work_precision",
               "Wall time to reach a stated error (interpolated on the work-precision curves)",
               equal_accuracy),
    FigureSpec("work_precision_nfe", "work_precision", "Work-precision: error vs NFE",
               work_precision_nfe),
    FigureSpec("work_precision_wall", "work_precision", "Work-precision: error vs wall clock",
               work_precision_wall),
    FigureSpec("gradient_precision_wall", "gradient_accuracy",
               "Gradient work-precision: gradient error vs backward wall clock", gradient_wall,
               line=_GRADIENT_LINE),
    FigureSpec("gradient_precision_nfe", "gradient_accuracy",
               "Gradient work-precision: gradient error vs forward + backward NFE", gradient_nfe,
               line=_GRADIENT_LINE),
    FigureSpec("lorenz_drift", "lorenz_drift", "Lorenz: error growth with the final time T",
               lorenz_drift, panel=("problem",), line=(*_GRADIENT_LINE, "rtol", "atol"),
               along=("T",)),
    FigureSpec("memory_scaling", "memory_scaling", "Memory saved for backward vs T",
               memory_scaling, panel=("problem", "width", "batch", "state_dim"),
               line=(*_GRADIENT_LINE, "rtol", "atol"), along=("T",)),
    FigureSpec("overhead", "overhead", _OVERHEAD_TITLE, overhead, panel=("problem", "T"),
               line=("backend", "method", "gradient", *_SETTINGS), along=()),
    FigureSpec("stiff_scd_wall", "stiff", "Stiff work-precision: error 10^-scd vs wall clock",
               stiff_wall, where=(("dtype", ("float64",)), *_FORWARD)),
    FigureSpec("stiff_scd_nfe", "stiff", "Stiff work-precision: error 10^-scd vs NFE",
               stiff_nfe, where=(("dtype", ("float64",)), *_FORWARD)),
    FigureSpec("gradient_scaling", "gradient_scaling",
               "Gradient methods: forward + backward wall vs size", gradient_scaling,
               panel=("axis", "problem"),
               line=("backend", "gradient", "method", *_SETTINGS), along=("n_params", "state_dim")),
    FigureSpec("per_sample", "per_sample",
               "Van der Pol batch: joint vs per-sample step sizes",
               per_sample, panel=(), line=("backend", "batching", "method", *_SETTINGS),
               along=("problem", "T", "batch")),
    FigureSpec("seminorm", "seminorm",
               "Seminorm: gradient error vs backward NFE",
               seminorm_nfe, panel=("problem", "state_dim", "atol_ratio"),
               line=("backend", "gradient", "adjoint_norm", "seminorm", "method", "dtype",
                     "device")),
    FigureSpec("models_loss", "models", "Models: training loss per iteration (seed 0)",
               models_loss, **_MODELS),
    FigureSpec("models_nfe", "models", "Models: NFE per training iteration (seed 0)", models_nfe,
               **_MODELS),
    FigureSpec("models_nfe_ratio", "models",
               "Models: backward NFE / forward NFE over training (seed 0)", models_nfe_ratio,
               **_MODELS),
)


def save(figure: Figure, provenance: Provenance, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` with the provenance footer in a band at the bottom."""
    band = _FOOTER_BAND_IN / figure.get_figheight()
    figure.get_layout_engine().set(rect=(0.0, band, 1.0, 1.0 - band))
    figure.text(0.005, 0.005, provenance.footer(), fontsize=6, color="0.35", va="bottom")
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    with mpl.rc_context({"svg.hashsalt": "odebench"}):
        figure.savefig(png, dpi=_DPI)
        figure.set_layout_engine("none")  # keep the layout just computed: the SVG reuses it
        figure.savefig(svg, metadata={"Date": None})
    return [png, svg]


def build_figures(rows: pd.DataFrame, directory: Path,
                  specs: Sequence[FigureSpec] = FIGURES) -> list[FigureFile]:
    """Draw and save every figure of ``specs`` whose study has plottable rows, in order.

    Raises ``AmbiguousCellError`` when two rows would feed one point of a figure.
    """
    written = []
    for spec in specs:
        selected = rows[rows["study"] == spec.study] if "study" in rows.columns else rows.iloc[0:0]
        if selected.empty:
            continue
        data = points(selected, spec)
        drawing = spec.draw(data, spec)
        if drawing is None:
            continue
        provenance = Provenance.from_rows(_sources(selected, spec))
        files = save(drawing.figure, provenance, directory / spec.name)
        written.append(FigureFile(spec.name, spec.title, files, provenance, drawing.caption))
    return written


def _sources(rows: pd.DataFrame, spec: FigureSpec) -> pd.DataFrame:
    """The rows a figure's points come from (those its ``where`` keeps)."""
    return pd.DataFrame.from_records(where(records_of(rows), spec.where))

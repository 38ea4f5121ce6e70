"""Seaborn figures from results rows, each saved as PNG and SVG with a provenance footer.

Figures are drawn on ``matplotlib.figure.Figure`` objects with an Agg canvas,
never through pyplot, so building a report neither needs a display nor changes
the caller's matplotlib backend. A figure is made only when its study has rows
it can plot; log axes drop non-positive values. SVGs carry no date and fixed
element ids so that regenerating unchanged rows gives unchanged files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
from odebench.report.tables import as_dict

__all__ = [
    "FIGURES",
    "FigureFile",
    "build_figures",
    "lorenz_drift",
    "memory_scaling",
    "models_loss",
    "models_nfe",
    "models_nfe_ratio",
    "overhead",
    "save",
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
_DPI = 150
_FOOTER_BAND_IN = 0.16  # inches kept free at the bottom for the provenance footer


@dataclass
class FigureFile:
    """A written figure: its files (PNG, SVG) and the provenance of the rows drawn."""

    name: str
    title: str
    files: list[Path]
    provenance: Provenance


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


def _per_problem(
    rows: pd.DataFrame, x: str, y: str, title: str, xlabel: str, ylabel: str, log_y: bool
) -> Figure | None:
    """Lines of ``y`` against ``x`` (log x), hue backend/method, one panel per problem."""
    data = _ok(rows)
    data = _positive(data, x, y) if log_y else _positive(data, x)
    data = data[pd.to_numeric(data[y], errors="coerce").notna()]
    if data.empty:
        return None
    data = data.assign(**{"backend/method": _label(data, "backend", "method")})
    palette = _palette(data["backend/method"])
    problems = sorted(data["problem"].unique())
    figure, axes = _panels(problems, title)
    for ax, problem in zip(axes, problems, strict=True):
        panel = data[data["problem"] == problem]
        sns.lineplot(
            data=panel,
            x=x,
            y=y,
            hue="backend/method",
            palette=palette,
            marker="o",
            estimator="median",
            errorbar=None,
            ax=ax,
        )
        _log_axis(ax, "x", panel[x])
        if log_y:
            _log_axis(ax, "y", panel[y])
        ax.set(title=problem, xlabel=xlabel, ylabel=ylabel)
    _shared_legend(figure, axes)
    return figure


def work_precision_nfe(rows: pd.DataFrame) -> Figure | None:
    """Solution error against forward NFE, log-log, per problem."""
    return _per_problem(
        rows,
        "nfe_forward",
        "sol_error",
        "Work-precision: error vs NFE",
        "function evaluations (forward)",
        "relative L2 error",
        log_y=True,
    )


def work_precision_wall(rows: pd.DataFrame) -> Figure | None:
    """Solution error against forward wall clock, log-log, per problem."""
    return _per_problem(
        rows,
        "wall_forward_s",
        "sol_error",
        "Work-precision: error vs wall clock",
        "wall clock, forward (s)",
        "relative L2 error",
        log_y=True,
    )


def _stiff_forward(rows: pd.DataFrame) -> pd.DataFrame:
    """The stiff study's float64 forward solves (its gradient runs use shorter horizons, and
    float32 runs are reported in the tables)."""
    keep = rows["gradient"].isna() if "gradient" in rows.columns else True
    if "dtype" in rows.columns:
        keep = keep & (rows["dtype"] == "float64")
    return rows[keep]


def stiff_wall(rows: pd.DataFrame) -> Figure | None:
    """Significant correct digits against wall clock (log x), per stiff problem (float64
    forward solves)."""
    return _per_problem(
        _stiff_forward(rows),
        "wall_forward_s",
        "scd",
        "Stiff work-precision: digits vs wall clock",
        "wall clock, forward (s)",
        "significant correct digits",
        log_y=False,
    )


def stiff_nfe(rows: pd.DataFrame) -> Figure | None:
    """Significant correct digits against NFE (log x), per stiff problem (float64 forward
    solves)."""
    return _per_problem(
        _stiff_forward(rows),
        "nfe_forward",
        "scd",
        "Stiff work-precision: digits vs NFE",
        "function evaluations (forward)",
        "significant correct digits",
        log_y=False,
    )


def _bars(ax: Axes, data: pd.DataFrame, x: str, y: str, hue: str) -> None:
    """Median of ``y`` per ``x`` as bars, one color per ``hue``, both in sorted order."""
    sns.barplot(
        data=data,
        x=x,
        y=y,
        hue=hue,
        order=sorted(data[x].unique()),
        hue_order=sorted(data[hue].unique()),
        palette=_palette(data[hue]),
        estimator="median",
        errorbar=None,
        ax=ax,
    )


def _single(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.set_title(title)
    return figure, ax


def lorenz_drift(rows: pd.DataFrame) -> Figure | None:
    """Gradient error per method and backsolve's reconstruction error against T (log y).

    Stopped runs are marked with a red cross at the top of the axes, at their T.
    """
    rows = rows[pd.to_numeric(rows["T"], errors="coerce").notna()]
    if rows.empty:
        return None
    rows = rows.assign(label=_label(rows, "gradient", "method"))
    figure, ax = _single("Lorenz: error growth with the final time T")
    errors = _positive(_ok(rows), "grad_error")
    if not errors.empty:
        sns.lineplot(
            data=errors,
            x="T",
            y="grad_error",
            hue="label",
            palette=_palette(rows["label"]),
            marker="o",
            estimator="median",
            errorbar=None,
            ax=ax,
        )
    recon = _positive(_ok(rows), "recon_error")
    if not recon.empty:
        sns.lineplot(
            data=recon,
            x="T",
            y="recon_error",
            color="0.2",
            linestyle="--",
            marker="s",
            estimator="median",
            errorbar=None,
            label="backsolve: reconstruction error",
            ax=ax,
        )
    stopped = rows[rows["status"] != "ok"]
    if not stopped.empty:
        ax.scatter(
            stopped["T"].astype(float),
            [0.97] * len(stopped),
            marker="X",
            color="tab:red",
            transform=blended_transform_factory(ax.transData, ax.transAxes),
            clip_on=False,
            zorder=5,
            label="stopped run (" + ", ".join(sorted(set(stopped["status"]))) + ")",
        )
    if not errors.empty or not recon.empty:
        _log_axis(ax, "y", pd.concat([errors["grad_error"], recon["recon_error"]]))
    ax.set(xlabel="final time T", ylabel="relative L2 error")
    ax.legend(fontsize="small")
    return figure


def _scaling_axis(rows: pd.DataFrame) -> str | None:
    """The first of T, width, batch, state_dim that takes more than one value."""
    for column in ("T", "width", "batch", "state_dim"):
        if pd.to_numeric(rows[column], errors="coerce").nunique() > 1:
            return column
    return None


def memory_scaling(rows: pd.DataFrame) -> Figure | None:
    """Bytes saved for backward per gradient method against T (or the size that varies), log y."""
    data = _positive(_ok(rows), "saved_bytes")
    axis = _scaling_axis(data)
    if axis is None:
        return None
    data = data.assign(label=_label(data, "gradient"))
    figure, ax = _single(f"Memory saved for backward vs {axis}")
    several = data["problem"].nunique() > 1
    sns.lineplot(
        data=data,
        x=axis,
        y="saved_bytes",
        hue="label",
        palette=_palette(data["label"]),
        style="problem" if several else None,
        marker="o",
        estimator="median",
        errorbar=None,
        ax=ax,
    )
    _log_axis(ax, "y", data["saved_bytes"])
    ax.set(xlabel=axis, ylabel="bytes saved for backward")
    ax.legend(fontsize="small")
    return figure


def overhead(rows: pd.DataFrame) -> Figure | None:
    """Bars of overhead_ratio (wall / (NFE x one evaluation)) per backend for each problem,
    with a dashed line at the target ratio of 2.0."""
    data = _ok(rows)
    data = data[pd.to_numeric(data["overhead_ratio"], errors="coerce").notna()]
    if data.empty:
        return None
    data = data.assign(overhead_ratio=data["overhead_ratio"].astype(float))
    figure, ax = _single(
        "Solver-loop overhead, 1 thread:\nwall / (NFE x one vector-field evaluation)"
    )
    _bars(ax, data, "problem", "overhead_ratio", "backend")
    ax.axhline(
        OVERHEAD_TARGET,
        color="k",
        linestyle="--",
        linewidth=1,
        label=f"target {OVERHEAD_TARGET:.1f}",
    )
    ax.set(xlabel="problem", ylabel="wall / (NFE x one evaluation)")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize="small")
    return figure


def _latest_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """The ok rows with their ``extra`` as dicts, the last recorded per model and gradient,
    seed 0 only (further seeds, where run, are in the tables)."""
    data = _ok(rows)
    if "params" in data.columns:
        seeds = [as_dict(value).get("seed", 0) for value in data["params"]]
        data = data[[seed == 0 for seed in seeds]]
    data = data.assign(extra=[as_dict(value) for value in data["extra"]])
    data = data.sort_values("timestamp", kind="stable", na_position="first")
    return data.drop_duplicates(["model", "gradient"], keep="last")


def _per_iteration(rows: pd.DataFrame, entry: str) -> pd.DataFrame:
    """Columns model, gradient, iteration (from 1) and value, from the list ``extra[entry]``."""
    records = [
        (row.model, str(row.gradient), iteration, value)
        for row in rows.itertuples(index=False)
        for iteration, value in enumerate(row.extra.get(entry) or [], start=1)
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


def models_loss(rows: pd.DataFrame) -> Figure | None:
    """Training loss against iteration (``extra["losses"]``), a panel per model, hue gradient.

    The y axis is logarithmic in a panel whose losses are all finite and positive.
    """
    data = _per_iteration(_latest_runs(rows), "losses").dropna(subset=["value"])
    if data.empty:
        return None
    return _per_model(data, "Models: training loss", "training loss", style=None, log_y=True)


def models_nfe(rows: pd.DataFrame) -> Figure | None:
    """Function evaluations per training iteration, forward (solid) and backward (dashed),
    a panel per model that calls an ODE solver, hue gradient."""
    runs = _latest_runs(rows)
    data = pd.concat(
        [
            _per_iteration(runs, "nfe_forward_per_iter").assign(**{"pass": "forward"}),
            _per_iteration(runs, "nfe_backward_per_iter").assign(**{"pass": "backward"}),
        ]
    ).dropna(subset=["value"])
    solved = data.loc[(data["pass"] == "forward") & (data["value"] > 0), "model"].unique()
    data = data[data["model"].isin(solved)]
    if data.empty:
        return None
    title = "Models: function evaluations per iteration"
    return _per_model(data, title, "NFE per iteration", style="pass", log_y=False)


def models_nfe_ratio(rows: pd.DataFrame) -> Figure | None:
    """Bars of backward NFE / forward NFE over training per model, hue gradient."""
    runs = _latest_runs(rows)
    data = runs.assign(
        ratio=pd.to_numeric(
            [run.get("nfe_backward_over_forward") for run in runs["extra"]], errors="coerce"
        ),
        gradient=runs["gradient"].astype(str),
    ).dropna(subset=["ratio"])
    if data.empty:
        return None
    figure, ax = _single("Models: backward NFE / forward NFE over training")
    _bars(ax, data, "model", "ratio", "gradient")
    ax.set(xlabel="model", ylabel="NFE backward / NFE forward")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize="small", title="gradient", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


#: (file stem, study, title, drawing function), in report order.
FIGURES: tuple[tuple[str, str, str, Callable[[pd.DataFrame], Figure | None]], ...] = (
    ("work_precision_nfe", "work_precision", "Work-precision: error vs NFE", work_precision_nfe),
    (
        "work_precision_wall",
        "work_precision",
        "Work-precision: error vs wall clock",
        work_precision_wall,
    ),
    ("lorenz_drift", "lorenz_drift", "Lorenz drift vs T", lorenz_drift),
    ("memory_scaling", "memory_scaling", "Memory vs T", memory_scaling),
    ("overhead", "overhead", _OVERHEAD_TITLE, overhead),
    ("stiff_scd_wall", "stiff", "Stiff: digits vs wall clock", stiff_wall),
    ("stiff_scd_nfe", "stiff", "Stiff: digits vs NFE", stiff_nfe),
    ("models_loss", "models", "Models: training loss per iteration", models_loss),
    ("models_nfe", "models", "Models: NFE per training iteration", models_nfe),
    (
        "models_nfe_ratio",
        "models",
        "Models: backward NFE / forward NFE over training",
        models_nfe_ratio,
    ),
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


def build_figures(rows: pd.DataFrame, directory: Path) -> list[FigureFile]:
    """Draw and save every figure whose study has plottable rows, in ``FIGURES`` order."""
    written = []
    for name, study, title, draw in FIGURES:
        selected = rows[rows["study"] == study] if "study" in rows.columns else rows.iloc[0:0]
        if selected.empty:
            continue
        figure = draw(selected)
        if figure is None:
            continue
        provenance = Provenance.from_rows(selected)
        written.append(
            FigureFile(name, title, save(figure, provenance, directory / name), provenance)
        )
    return written

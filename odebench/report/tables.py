"""Tables from results rows, written as Markdown, CSV and LaTeX (booktabs).

Each ``TableSpec`` names the studies it reads, an optional filter on column
values (``where``), the columns that identify a row of the table (``keys``)
and what it shows: either one value spread over the problems (``pivot``; a
stopped run shows its status instead of a number) or a set of measurement
columns (``values``, with a ``status`` column). With ``extra_values`` the
scalar entries of a row's ``extra`` dict become columns that ``where``,
``keys``, ``values`` and ``pivot`` can name. Key columns that are the same for
every row are not shown as columns but listed under the title as "fixed"
settings; a value column that no row fills is left out, and so is a pivot
row or column without a value or a stopped run in it. Each cell comes from one
row: two rows with the same keys (and pivot columns) raise
``odebench.report.select.AmbiguousCellError`` unless the spec names an
``Aggregate`` (then a cell is the median over the named dimension, shown with
its interquartile range). Methods are shown by their libraries' own names and
backsolve variants by what they do (``odebench.report.labels``). The CSV holds
only the data (a pivot table as one line per cell, status an early column);
its provenance and notes are in the sidecar ``<name>.json`` and the Markdown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.environment import Provenance
from odebench.errors import InvalidInputError
from odebench.report import labels
from odebench.report.labels import as_dict
from odebench.report.select import Aggregate, cells, finished, pool, summarize, where

__all__ = [
    "TABLES",
    "Table",
    "TableSpec",
    "as_dict",
    "build_table",
    "build_tables",
    "column_label",
    "format_value",
    "latex_escape",
    "to_csv",
    "to_latex",
    "to_json",
    "to_markdown",
    "records_of",
    "write_table",
]

#: Columns holding counts or bytes: shown as whole numbers.
INTEGER_COLUMNS = frozenset(
    {
        "nfe_forward",
        "nfe_backward",
        "steps",
        "rejected",
        "saved_bytes",
        "peak_rss_bytes",
        "n_jac",
        "n_lu",
        "width",
        "batch",
        "state_dim",
        "n_params",
    }
)

#: Columns shown with two decimals rather than three significant digits.
FIXED_POINT_COLUMNS = frozenset({"scd", "overhead_ratio"})


@dataclass(frozen=True)
class TableSpec:
    """What one table shows. ``pivot``: the value spread over ``columns``; else ``values``.

    ``extra_values`` lifts the scalar entries of each row's ``extra`` dict into
    columns; the table then shows every one of them when ``values`` is empty,
    else exactly ``values`` (columns or extras), in that order. ``where`` keeps
    the rows whose column (after lifting) takes one of the allowed values, e.g.
    ``(("rtol", (1e-8,)),)``; floats match to a relative 1e-9.
    """

    name: str  # file stem
    title: str
    studies: tuple[str, ...]
    keys: tuple[str, ...]  # identify a table row; also the sort order
    pivot: str | None = None
    columns: str | tuple[str, ...] = ("problem", "T")  # pivot: a column per value (pair)
    values: tuple[str, ...] = ()
    extra_values: bool = False  # lift the scalar entries of the ``extra`` dict into columns
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (column, allowed values) pairs
    aggregate: Aggregate | None = None  # pool the rows of a cell over a dimension (median)

    @property
    def column_dims(self) -> tuple[str, ...]:
        """The dimensions a pivot table spreads over its columns (``columns`` may be one name)."""
        return (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)


_SETTINGS = ("rtol", "atol", "dtype", "device")
_MODEL_KEYS = ("model", "problem", "gradient", "seed", "n_blocks", "backend", "method", *_SETTINGS)
_MODEL_COST = ("nfe_forward", "nfe_backward", "saved_bytes", "train_wall_s")

def _model_table(name: str, title: str, values: tuple[str, ...],
                 models: tuple[str, ...]) -> TableSpec:
    """A table of the models study restricted to ``models`` (one comparison), showing
    ``values`` (the model's own metrics lifted from ``extra``, then cost columns)."""
    return TableSpec(name=name, title=title, studies=("models",), keys=_MODEL_KEYS,
                     values=values, extra_values=True, where=(("model", models),))


#: The tables of a report, in order.
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        name="gradient_error",
        title="Gradient error (relative L2 against the forward-sensitivity truth)",
        studies=("gradient_accuracy", "verify"),
        keys=("study", "backend", "method", "gradient", "seminorm", *_SETTINGS),
        pivot="grad_error",
        columns=("problem", "T"),
    ),
    TableSpec(
        name="solution_error",
        title="Solution error at the final time (relative L2 against the float64 truth)",
        studies=("work_precision",),
        keys=("backend", "method", *_SETTINGS),
        pivot="sol_error",
    ),
    TableSpec(
        name="nfe",
        title="Function evaluations, forward and backward, and steps",
        studies=("work_precision", "gradient_accuracy", "verify"),
        keys=("study", "problem", "T", "backend", "method", "gradient", "seminorm", *_SETTINGS),
        values=("nfe_forward", "nfe_backward", "steps", "rejected"),
    ),
    TableSpec(
        name="memory",
        title="Memory: bytes saved for backward and peak resident set (bytes)",
        studies=("memory_scaling",),
        keys=(
            "problem",
            "backend",
            "method",
            *_SETTINGS,
            "width",
            "batch",
            "state_dim",
            "T",
            "gradient",
        ),
        values=(
            "saved_bytes",
            "peak_rss_bytes",
            "nfe_forward",
            "nfe_backward",
            "wall_forward_s",
            "wall_backward_s",
        ),
    ),
    TableSpec(
        name="lorenz_drift",
        title="Lorenz: gradient error and backsolve reconstruction error against the final time T",
        studies=("lorenz_drift",),
        keys=("problem", "backend", "method", *_SETTINGS, "T", "gradient", "seminorm"),
        values=("grad_error", "recon_error", "sol_error", "nfe_forward", "nfe_backward"),
    ),
    TableSpec(
        name="overhead",
        title="Solver-loop overhead: wall / (NFE x one vector-field evaluation), 1 thread",
        studies=("overhead",),
        keys=("problem", "T", "backend", "method", "gradient", *_SETTINGS),
        values=("overhead_ratio", "wall_forward_s", "nfe_forward", "wall_per_nfe_s", "eval_s"),
        extra_values=True,
    ),
    TableSpec(
        name="per_sample",
        title="Van der Pol batch (mu_b = 25 (b+1)/B): one step size (joint) vs per-sample step "
              "sizes, beside torchode; steps per sample, batched calls, wall",
        studies=("per_sample",),
        keys=("problem", "T", "backend", "method", "batching", "batch", *_SETTINGS),
        values=("steps_per_sample_mean", "steps_per_sample_max", "rejected_per_sample_mean",
                "nfe_forward", "sample_nfe_total", "wall_forward_s", "wall_forward_iqr_s",
                "n_repeats", "sol_error"),
        extra_values=True,
    ),
    TableSpec(
        name="gradient_scaling",
        title="Gradient methods against size: wall clock forward + backward (s) and bytes saved "
              "for backward, per gradient method and library, at rtol = atol = 1e-5",
        studies=("gradient_scaling",),
        keys=("axis", "problem", "n_params", "state_dim", "backend", "gradient", "method",
              *_SETTINGS),
        values=("wall_total_s", "wall_forward_s", "wall_backward_s", "saved_bytes",
                "nfe_forward", "nfe_backward"),
    ),
    TableSpec(
        name="seminorm",
        title="Seminorm: backward NFE, backward wall (s) and gradient error of the adjoints with "
              "and without the seminorm, per backward error norm, beside torchdiffeq's",
        studies=("seminorm",),
        keys=("problem", "T", "state_dim", "n_params", "backend", "gradient", "adjoint_norm",
              "seminorm", "method", *_SETTINGS),
        values=("nfe_backward", "wall_backward_s", "grad_error", "nfe_forward",
                "steps_backward", "rejected_backward"),
        extra_values=True,
    ),
    TableSpec(
        name="stiff",
        title="Stiff problems: significant correct digits (scd) and cost",
        studies=("stiff",),
        keys=("problem", "T", "backend", "method", "gradient", *_SETTINGS),
        values=(
            "scd",
            "series_max_error",
            "steps",
            "rejected",
            "nfe_forward",
            "n_jac",
            "n_lu",
            "wall_forward_s",
            "grad_error",
        ),
    ),
    TableSpec(
        name="stiff_targets",
        title="Stiff problems at rtol 1e-8, float64: digits (scd), cost and wall clock (s)",
        studies=("stiff",),
        keys=("problem", "T", "backend", "method", "gradient", *_SETTINGS),
        values=("scd", "series_max_error", "steps", "nfe_forward", "n_jac", "n_lu",
                "wall_forward_s"),
        where=(("dtype", ("float64",)), ("rtol", (1e-8,))),
    ),
    TableSpec(
        name="models",
        title=(
            "Models: final training loss, NFE per iteration (mean), bytes saved for backward"
            " and training wall clock (s)"
        ),
        studies=("models",),
        keys=_MODEL_KEYS,
        values=(
            "final_loss",
            "nfe_forward",
            "nfe_backward",
            "nfe_backward_over_forward",
            "saved_bytes",
            "train_wall_s",
        ),
        extra_values=True,
    ),
    _model_table(
        "models_classifier",
        "ODE-Net vs ResNet on scikit-learn digits: test error (fraction misclassified)",
        ("test_error", "n_params", *_MODEL_COST),
        ("odenet", "resnet"),
    ),
    _model_table(
        "models_cnf",
        "Continuous normalizing flows: test negative log-likelihood (nats)",
        ("test_nll", "n_params", *_MODEL_COST),
        ("cnf", "cnf_moons", "cnf_checkerboard", "cnf_pinwheel"),
    ),
    _model_table(
        "models_latent",
        "Latent ODE vs GRU on spirals: interpolation and extrapolation MSE",
        ("interp_mse", "extrap_mse", "n_params", *_MODEL_COST),
        ("latent_ode", "gru"),
    ),
    _model_table(
        "models_augmented",
        "Neural ODE vs augmented neural ODE on the flip toy: final training MSE",
        ("final_mse", "n_params", "nfe_forward", "nfe_backward"),
        ("node_toy", "anode_toy"),
    ),
    TableSpec(
        name="models_nfe_ratio",
        title="Models: backward NFE / forward NFE over training, per gradient method",
        studies=("models",),
        keys=("gradient", "backend", "method", *_SETTINGS),
        pivot="nfe_backward_over_forward",
        columns=("model", "seed"),
        extra_values=True,
    ),
)


@dataclass
class Table:
    """A built table: ``frame`` holds raw values (numbers, or a stopped run's status).

    ``notes`` are lines to show under the table (what each gradient variant does, the
    peer-method mapping, the budget marker, an aggregation, dropped rows, the commits of a
    mixed build). ``marks`` holds the (row position, column) cells of a pivot whose run
    finished over its gradient-error budget; ``display`` appends :data:`MARK` to them.
    ``long`` is the data as one line per cell (pivot tables), the CSV export.
    """

    name: str
    title: str
    frame: pd.DataFrame
    fixed: list[tuple[str, Any]]  # key columns equal for every row: (column, value)
    provenance: Provenance
    studies: tuple[str, ...]
    keys: tuple[str, ...] = ()  # the columns that identify a row
    pivot: str | None = None  # for a pivot table: the measurement the other columns hold
    row_figures: list[Path] = field(default_factory=list)  # images named in extra["figures"]
    files: list[Path] = field(default_factory=list)  # filled by write_table
    notes: list[str] = field(default_factory=list)
    marks: set[tuple[int, str]] = field(default_factory=set)
    long: pd.DataFrame | None = None

    def _measure(self, column: str) -> str:
        """The results column whose format a table column takes."""
        return self.pivot if self.pivot and column not in self.keys else column

    def display(self) -> pd.DataFrame:
        """The table as text, every cell formatted with ``format_value``."""
        return pd.DataFrame(
            {
                column: [
                    format_value(v, self._measure(column))
                    + (MARK if (i, column) in self.marks else "")
                    for i, v in enumerate(self.frame[column])
                ]
                for column in self.frame.columns
            },
            columns=list(self.frame.columns),
            dtype=object,
        )

    def numeric(self) -> list[bool]:
        """Per column, whether it holds numbers (shown right-aligned)."""
        return [
            any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.frame[c])
            for c in self.frame.columns
        ]

    def fixed_text(self) -> str:
        """The fixed settings as ``column = value`` pairs joined by "; "."""
        return "; ".join(f"{name} = {format_value(value, name)}" for name, value in self.fixed)

    @property
    def caption(self) -> str:
        """The notes as one paragraph (what the page shows under the title), "" if none."""
        return " ".join(f"{note}." for note in self.notes)

    def header_lines(self) -> list[str]:
        """Title, studies, fixed settings, notes and provenance, one per line, without markup."""
        lines = [self.title, f"studies: {', '.join(self.studies)}"]
        if self.fixed:
            lines.append(f"fixed: {self.fixed_text()}")
        lines.extend(f"note: {note}" for note in self.notes)
        lines.extend(f"{label}: {text}" for label, text in self.provenance.items())
        return lines

    def export(self) -> pd.DataFrame:
        """The data a CSV holds: one line per cell for a pivot, else the table; integer
        columns as integers, numeric columns as numbers, missing values empty."""
        return _typed(self.long if self.long is not None else self.frame)


#: Appended to a pivot cell whose run finished with a gradient error over its budget.
MARK = " *"


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every all-number column as numbers (``Int64`` when all whole and a count
    column or all ints), the rest as text."""
    typed = {}
    for column in frame.columns:
        values = [None if _missing(v) else v for v in frame[column]]
        present = [v for v in values if v is not None]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
        if present and numbers:
            whole = all(float(v).is_integer() for v in present)
            ints = all(isinstance(v, int) for v in present)
            if whole and (ints or column in INTEGER_COLUMNS or column.startswith("n_")):
                typed[column] = pd.array([None if v is None else int(v) for v in values],
                                         dtype="Int64")
            else:
                typed[column] = pd.array(values, dtype="Float64").astype(float)
        else:
            typed[column] = pd.Series(values, dtype=object)
    return pd.DataFrame(typed, columns=list(frame.columns))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any, column: str = "") -> str:
    """One cell as text: counts as integers, ``scd``/``overhead_ratio`` to 2 decimals,
    other numbers to 3 significant digits, missing as an empty string."""
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if isinstance(value, int) or (column in INTEGER_COLUMNS and float(value).is_integer()):
            return str(int(value))
        if column in FIXED_POINT_COLUMNS:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _normal(value: Any) -> Any:
    """A hashable, comparable stand-in: missing -> None, dicts and lists -> JSON text."""
    if _missing(value):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def records_of(selected: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``selected`` as dicts (values normalised, derived columns added, methods and
    gradient variants named as the report shows them), oldest first."""
    records = [
        {column: _normal(value) for column, value in record.items()}
        for record in selected.to_dict("records")
    ]
    _add_derived(records)
    return sorted(records, key=lambda r: r.get("timestamp") or "")


def _lift_extras(records: list[dict[str, Any]]) -> list[str]:
    """Copy the scalar entries of each record's ``extra`` into the record as columns.

    A name that clashes with a column gets an ``extra_`` prefix. Returns the
    new column names in first-seen order.
    """
    names: dict[str, None] = {}
    for record in records:
        for name, value in as_dict(record.get("extra")).items():
            if isinstance(value, (dict, list)):
                continue
            column = f"extra_{name}" if name in record else name
            record[column] = _normal(value)
            names.setdefault(column, None)
    return list(names)


#: Wall-clock columns; a row may carry their repeats' interquartile range as ``<name>_iqr_s``
#: (``<name>`` without its ``_s``) or the repeats themselves as a list.
WALL_COLUMNS = ("wall_forward_s", "wall_backward_s", "train_wall_s")


#: Grid dimensions that studies record in ``params``, lifted into columns of their own:
#: ``axis`` and ``n_params`` (gradient_scaling, seminorm), ``batching`` (per_sample),
#: ``n_blocks`` (models), ``adjoint_norm`` and ``atol_ratio`` (seminorm).
PARAM_COLUMNS = ("axis", "n_params", "batching", "n_blocks", "adjoint_norm", "atol_ratio")


def _iqr_column(column: str) -> str:
    return column.removesuffix("_s") + "_iqr_s"


def _add_derived(records: list[dict[str, Any]]) -> None:
    """Columns derived from others: ``series_max_error``, the largest relative error over all
    output times (from ``sol_error_series``; the final-time error alone flatters some solvers),
    the grid dimensions of :data:`PARAM_COLUMNS` a row's ``params`` name, ``wall_total_s``
    (forward + backward wall, s, where both are recorded), ``seed``, a run's seed when its
    ``params`` name one (models), the median and IQR of a wall clock recorded as a list of
    repeats, the peer's own ``method`` name, the ``gradient`` variant, and the status
    ``ok (over budget)`` (see ``odebench.report.labels``)."""
    for record in records:
        params = as_dict(record.get("params"))
        if "seed" in params or "config" in params:
            record["seed"] = params.get("seed", 0)
        series = record.get("sol_error_series")  # JSON text after _normal
        numbers = [v for v in json.loads(series or "[]") if isinstance(v, (int, float))]
        if numbers:
            record["series_max_error"] = max(numbers)
        for column in WALL_COLUMNS:
            value = record.get(column)
            if isinstance(value, str) and value.startswith("["):
                summary = summarize(json.loads(value))
                record[column] = summary.median if summary else None
                record[_iqr_column(column)] = summary.q3 - summary.q1 if summary else None
        for name in PARAM_COLUMNS:
            if name in params and record.get(name) is None:
                record[name] = _normal(params[name])
        forward, backward = record.get("wall_forward_s"), record.get("wall_backward_s")
        if isinstance(forward, (int, float)) and isinstance(backward, (int, float)):
            record["wall_total_s"] = float(forward) + float(backward)
        record[labels.SLOT] = record.get("method")
        record["method"] = labels.shown_method(record)
        record["gradient"] = labels.gradient_variant(record)
        if labels.over_budget(record):
            record["status"] = labels.OVER_BUDGET


def _with_spread(values: Sequence[str], aggregate: Aggregate | None) -> list[str]:
    """``values`` with each one's spread column after it: the pooled quartiles when
    aggregating, and a wall clock's ``_iqr_s`` over repeats."""
    shown: list[str] = []
    for value in values:
        shown.append(value)
        if aggregate is not None:
            shown += [f"{value}_q1", f"{value}_q3"]
        if value in WALL_COLUMNS:
            shown.append(_iqr_column(value))
    shown += [f"n_{aggregate.over}"] if aggregate is not None else []
    return list(dict.fromkeys(shown))  # a spread column the spec also lists is shown once


def _notes(records: list[dict[str, Any]], aggregate: Aggregate | None,
           groups: dict[tuple[Any, ...], list[dict[str, Any]]]) -> list[str]:
    """The lines under a table: gradient variants shown, method-name mapping, budget marker,
    the aggregation, and the commits when the rows come from more than one."""
    notes = [labels.VARIANT_NOTES[g] for g in
             sorted({r.get("gradient") for r in records if r.get("gradient") is not None})
             if g in labels.VARIANT_NOTES]
    mapping = labels.method_mapping(records)
    if mapping:
        notes.append(mapping)
    if any(r.get("status") == labels.OVER_BUDGET for r in records):
        notes.append(labels.budget_note() + f" (marked{MARK} in a pivot cell)")
    if aggregate is not None:
        notes.append(aggregate.note([len(m) for m in groups.values()]))
    commits: dict[str, int] = {}
    for record in records:
        commits[str(record.get("commit"))] = commits.get(str(record.get("commit")), 0) + 1
    if len(commits) > 1:
        notes.append("rows from several commits: "
                     + ", ".join(f"{c} ({n} rows)" for c, n in sorted(commits.items())))
    return notes


def build_table(spec: TableSpec, rows: pd.DataFrame) -> Table | None:
    """The table ``spec`` describes, from ``rows``; ``None`` when no row is left to show.

    Raises ``AmbiguousCellError`` when two rows would fill one cell and ``spec`` names no
    aggregation.
    """
    if "study" not in rows.columns:
        return None
    if spec.pivot and spec.aggregate is not None:
        raise InvalidInputError(f"table {spec.name!r}: a pivot table cannot aggregate (no room "
                                "for the spread); list the values instead")
    records = records_of(rows[rows["study"].isin(list(spec.studies))])
    extras = _lift_extras(records) if spec.extra_values else []
    records = where(records, spec.where)
    dropped = 0
    if spec.pivot:  # a run with neither the value nor a stopped status fills no cell
        kept = [r for r in records if r.get(spec.pivot) is not None or not finished(r)]
        dropped, records = len(records) - len(kept), kept
    if not records:
        return None

    dims = [*spec.keys, *(spec.column_dims if spec.pivot else ())]
    groups = cells(records, dims, f"table {spec.name!r}", spec.aggregate)
    values = spec.values or extras
    if spec.aggregate is not None:
        cell_records = [pool(members, values, spec.aggregate) for members in groups.values()]
    else:
        cell_records = [members[0] for members in groups.values()]

    present = [k for k in spec.keys if any(r.get(k) is not None for r in cell_records)]
    varying = [k for k in present if len({r.get(k) for r in cell_records}) > 1]
    if not varying and not spec.pivot:
        varying = present[:1]
    fixed = [(k, cell_records[0].get(k)) for k in present if k not in varying]
    cell_records.sort(key=lambda r: tuple(_sort_key(r.get(k)) for k in varying))

    notes = _notes(records, spec.aggregate, groups)
    if dropped:
        notes.append(f"{dropped} finished rows without {spec.pivot} are left out")
    marks: set[tuple[int, str]] = set()
    long = None
    if spec.pivot:
        frame, marks, long = _pivot(cell_records, varying, spec.pivot, spec.column_dims)
    else:
        wanted = _with_spread(values, spec.aggregate)
        shown = [v for v in wanted if any(r.get(v) is not None for r in cell_records)]
        frame = pd.DataFrame(
            [[r.get(c) for c in [*varying, "status", *shown]] for r in cell_records],
            columns=[*varying, "status", *shown],
            dtype=object,
        )
    return Table(
        name=spec.name,
        title=spec.title,
        frame=frame,
        fixed=fixed,
        provenance=Provenance.from_rows(pd.DataFrame.from_records(records)),
        keys=tuple(varying),
        pivot=spec.pivot,
        studies=tuple(s for s in spec.studies if any(r["study"] == s for r in records)),
        row_figures=_row_figures(records),
        notes=notes,
        marks=marks,
        long=long,
    )


def _row_figures(records: list[dict[str, Any]]) -> list[Path]:
    """The image files listed in the records' ``extra["figures"]``, as recorded, first-seen order.

    The paths are those the trainers wrote: relative to the working directory
    of the run (the repository root), or absolute.
    """
    paths: dict[Path, None] = {}
    for record in records:
        for name in as_dict(record.get("extra")).get("figures") or []:
            paths.setdefault(Path(name), None)
    return list(paths)


def column_label(record: dict[str, Any], over: Sequence[str]) -> str:
    """A pivot column's name from its ``over`` values: the first, then ``name=value`` for the
    rest that are set, e.g. "lorenz (T=2)"."""
    first, *rest = over
    label = str(record.get(first))
    given = [f"{name}={format_value(record.get(name), name)}" for name in rest
             if record.get(name) is not None]
    return f"{label} ({', '.join(given)})" if given else label


def _pivot(
    records: list[dict[str, Any]], keys: list[str], value: str, over: Sequence[str]
) -> tuple[pd.DataFrame, set[tuple[int, str]], pd.DataFrame]:
    """One row per distinct ``keys``, one column per distinct ``over`` values (each cell one
    record); a stopped run shows its status. Also the over-budget cells and the long form."""
    cells_by_key: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for record in records:
        row = cells_by_key.setdefault(tuple(record.get(k) for k in keys), {})
        row[column_label(record, over)] = record
    ordered = sorted(records, key=lambda r: tuple(_sort_key(r.get(o)) for o in over))
    names = list(dict.fromkeys(column_label(r, over) for r in ordered))
    table, marks = [], set()
    for position, (key, by) in enumerate(cells_by_key.items()):
        line = list(key)
        for name in names:
            record = by.get(name)
            if record is None:
                line.append(None)
                continue
            line.append(record.get(value) if finished(record) else record.get("status"))
            if record.get("status") == labels.OVER_BUDGET:
                marks.add((position, name))
        table.append(line)
    frame = pd.DataFrame(table, columns=[*keys, *names], dtype=object)
    long = pd.DataFrame(
        [[*(r.get(k) for k in [*keys, *over]), r.get("status"), r.get(value)] for r in records],
        columns=[*keys, *over, "status", value],
        dtype=object,
    )
    return frame, marks, long


def build_tables(rows: pd.DataFrame, specs: Sequence[TableSpec] = TABLES) -> list[Table]:
    """Every table of ``specs`` whose studies have rows, in order."""
    return [table for spec in specs if (table := build_table(spec, rows)) is not None]


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    """The table as GitHub-flavoured Markdown under a short provenance block, notes below."""
    display = table.display()
    context = f"studies: {', '.join(table.studies)}"
    if table.fixed:
        context += f"; fixed: {table.fixed_text()}"
    lines = [
        f"### {table.title}",
        "",
        f"> {context}  ",
        f"> source: {table.provenance.line()}",
        "",
        "| " + " | ".join(_markdown_cell(str(c)) for c in display.columns) + " |",
        "|" + "|".join("---:" if right else "---" for right in table.numeric()) + "|",
    ]
    for row in display.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
    if table.notes:
        lines += ["", *(f"- {_markdown_cell(note)}" for note in table.notes)]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """The data as plain CSV (full precision, no comment lines): ``pandas.read_csv`` loads it
    with no arguments. Provenance is in :func:`to_json`."""
    return table.export().to_csv(index=False, lineterminator="\n")


def to_json(table: Table) -> str:
    """The sidecar of the CSV: title, studies, fixed settings, notes, provenance, columns."""
    fixed = {name: format_value(value, name) for name, value in table.fixed}
    return json.dumps(
        {
            "title": table.title,
            "studies": list(table.studies),
            "fixed": fixed,
            "notes": table.notes,
            "provenance": dict(table.provenance.items()),
            "columns": [str(c) for c in table.export().columns],
        },
        indent=1,
    ) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}

#: Tables with more rows than this are written as a ``longtable`` (breaks across pages).
LONGTABLE_ROWS = 40


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def to_latex(table: Table) -> str:
    """A booktabs table (``longtable`` beyond :data:`LONGTABLE_ROWS` rows): numeric columns
    right-aligned, text escaped, the title as a short caption and the fixed settings, notes
    and provenance in a footnote-size note under it (and as ``%`` comments)."""
    display = table.display()
    spec = "".join("r" if right else "l" for right in table.numeric())
    head = " & ".join(latex_escape(str(c)) for c in display.columns) + r" \\"
    body = [" & ".join(latex_escape(cell) for cell in row) + r" \\"
            for row in display.itertuples(index=False)]
    caption = rf"\caption{{{latex_escape(table.title)}}}\label{{tab:{table.name}}}"
    footer = [f"Fixed: {table.fixed_text()}."] if table.fixed else []
    footer += [f"{note}." for note in table.notes] + [f"Source: {table.provenance.line()}."]
    note = r"\par\footnotesize " + latex_escape(" ".join(footer))
    if len(body) > LONGTABLE_ROWS:
        lines = [rf"\begin{{longtable}}{{{spec}}}", caption + r" \\", r"\toprule", head,
                 r"\midrule", r"\endfirsthead", r"\toprule", head, r"\midrule", r"\endhead",
                 r"\bottomrule", r"\endfoot", *body, r"\end{longtable}", "{" + note + "}"]
        needs = "booktabs, longtable"
    else:
        lines = [r"\begin{table}[htbp]", r"\centering", caption, rf"\begin{{tabular}}{{{spec}}}",
                 r"\toprule", head, r"\midrule", *body, r"\bottomrule", r"\end{tabular}", note,
                 r"\end{table}"]
        needs = "booktabs"
    header = "".join(f"% {line}\n" for line in table.header_lines())
    return header + f"% needs \\usepackage{{{needs}}}\n" + "\n".join(lines) + "\n"


def write_table(table: Table, directory: Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` (data only), ``<name>.json`` (its provenance) and
    ``<name>.tex`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    renders = ((".md", to_markdown), (".csv", to_csv), (".json", to_json), (".tex", to_latex))
    for suffix, render in renders:
        path = directory / f"{table.name}{suffix}"
        path.write_text(render(table), encoding="utf-8")
        paths.append(path)
    table.files = paths
    return paths

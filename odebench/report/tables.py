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
row or column without a value or a stopped run in it. The last row recorded
for a cell wins. Every file is headed by the provenance of the rows behind it.
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

__all__ = [
    "TABLES",
    "Table",
    "TableSpec",
    "build_table",
    "build_tables",
    "format_value",
    "latex_escape",
    "to_csv",
    "to_latex",
    "to_markdown",
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
    columns: str = "problem"
    values: tuple[str, ...] = ()
    extra_values: bool = False  # lift the scalar entries of the ``extra`` dict into columns
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (column, allowed values) pairs


_SETTINGS = ("rtol", "atol", "dtype", "device")
_MODEL_KEYS = ("model", "problem", "gradient", "seed", "backend", "method", *_SETTINGS)
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
        keys=("study", "problem", "backend", "method", "gradient", *_SETTINGS),
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
        keys=("problem", "T", "backend", "method", "mode", "batch", *_SETTINGS),
        values=("steps_per_sample_mean", "steps_per_sample_max", "rejected_per_sample_mean",
                "nfe_forward", "sample_nfe_total", "wall_forward_s", "wall_forward_iqr_s",
                "n_repeats", "sol_error"),
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
        columns="model",
        extra_values=True,
    ),
)


@dataclass
class Table:
    """A built table: ``frame`` holds raw values (numbers, or a stopped run's status)."""

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

    def _measure(self, column: str) -> str:
        """The results column whose format a table column takes."""
        return self.pivot if self.pivot and column not in self.keys else column

    def display(self) -> pd.DataFrame:
        """The table as text, every cell formatted with ``format_value``."""
        return pd.DataFrame(
            {
                column: [format_value(v, self._measure(column)) for v in self.frame[column]]
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

    def header_lines(self) -> list[str]:
        """Title, studies, fixed settings and provenance, one per line, without markup."""
        lines = [self.title, f"studies: {', '.join(self.studies)}"]
        if self.fixed:
            lines.append(f"fixed: {self.fixed_text()}")
        lines.extend(f"{label}: {text}" for label, text in self.provenance.items())
        return lines


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


def as_dict(value: Any) -> dict[str, Any]:
    """A row's dict column (``extra``, ``params``) as a dict, whether it comes as a dict or as the
    JSON text :func:`_normal` makes of it; else empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        return json.loads(value)
    return {}


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _records(selected: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``selected`` as dicts (values normalised), oldest first."""
    records = [
        {column: _normal(value) for column, value in record.items()}
        for record in selected.to_dict("records")
    ]
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


def _matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    """Whether ``value`` is one of ``allowed``; floats match to a relative 1e-9."""
    return any(
        value == option
        or (
            isinstance(value, float)
            and isinstance(option, (int, float))
            and math.isclose(value, option, rel_tol=1e-9)
        )
        for option in allowed
    )


def _add_derived(records: list[dict[str, Any]]) -> None:
    """Columns derived from others: ``series_max_error``, the largest relative error over all
    output times (from ``sol_error_series``; the final-time error alone flatters some solvers),
    and ``seed``, a run's seed when its ``params`` name one (models)."""
    for record in records:
        params = as_dict(record.get("params"))
        if "seed" in params or "config" in params:
            record["seed"] = params.get("seed", 0)
        series = record.get("sol_error_series")  # JSON text after _normal
        numbers = [v for v in json.loads(series or "[]") if isinstance(v, (int, float))]
        if numbers:
            record["series_max_error"] = max(numbers)


def _where(
    records: list[dict[str, Any]], where: Sequence[tuple[str, tuple[Any, ...]]]
) -> list[dict[str, Any]]:
    """The records whose every ``where`` column takes one of its allowed values."""
    return [r for r in records if all(_matches(r.get(c), allowed) for c, allowed in where)]


def build_table(spec: TableSpec, rows: pd.DataFrame) -> Table | None:
    """The table ``spec`` describes, from ``rows``; ``None`` when no row is left to show."""
    if "study" not in rows.columns:
        return None
    records = _records(rows[rows["study"].isin(list(spec.studies))])
    _add_derived(records)
    extras = _lift_extras(records) if spec.extra_values else []
    records = _where(records, spec.where)
    if spec.pivot:  # a run with neither the value nor a stopped status fills no cell
        records = [r for r in records if r.get(spec.pivot) is not None or r.get("status") != "ok"]
    if not records:
        return None

    present = [k for k in spec.keys if any(r.get(k) is not None for r in records)]
    varying = [k for k in present if len({r.get(k) for r in records}) > 1]
    if not varying and not spec.pivot:
        varying = present[:1]
    fixed = [(k, records[0].get(k)) for k in present if k not in varying]
    records.sort(key=lambda r: tuple(_sort_key(r.get(k)) for k in varying))

    if spec.pivot:
        frame = _pivot(records, varying, spec.pivot, spec.columns)
    else:
        values = spec.values or extras
        shown = [v for v in values if any(r.get(v) is not None for r in records)]
        latest = {tuple(r.get(k) for k in varying): r for r in records}
        frame = pd.DataFrame(
            [[r.get(c) for c in [*varying, *shown, "status"]] for r in latest.values()],
            columns=[*varying, *shown, "status"],
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


def _pivot(records: list[dict[str, Any]], keys: list[str], value: str, over: str) -> pd.DataFrame:
    """One row per distinct ``keys``, one column per value of ``over``; the last record wins."""
    cells: dict[tuple[Any, ...], dict[Any, Any]] = {}
    for record in records:
        cell = record.get(value) if record.get("status") == "ok" else record.get("status")
        cells.setdefault(tuple(record.get(k) for k in keys), {})[record.get(over)] = cell
    targets = sorted({r.get(over) for r in records}, key=_sort_key)
    names = [str(t) for t in targets]
    return pd.DataFrame(
        [[*key, *(by.get(t) for t in targets)] for key, by in cells.items()],
        columns=[*keys, *names],
        dtype=object,
    )


def build_tables(rows: pd.DataFrame, specs: Sequence[TableSpec] = TABLES) -> list[Table]:
    """Every table of ``specs`` whose studies have rows, in order."""
    return [table for spec in specs if (table := build_table(spec, rows)) is not None]


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    """The table as GitHub-flavoured Markdown under a short provenance block."""
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
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """The raw values as CSV (full precision), headed by ``# `` comment lines."""
    header = "".join(f"# {line}\n" for line in table.header_lines())
    return header + table.frame.to_csv(index=False, lineterminator="\n")


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


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` float; provenance as ``%`` comments and in the caption."""
    styler = table.display().style.hide(axis="index")
    styler = styler.format(escape="latex").format_index(escape="latex", axis=1)
    caption = f"{table.title}."
    if table.fixed:
        caption += f" Fixed: {table.fixed_text()}."
    caption += f" Source: {table.provenance.line()}."
    body = styler.to_latex(
        hrules=True,
        caption=latex_escape(caption),
        label=f"tab:{table.name}",
        position_float="centering",
        environment="table",
    )
    header = "".join(f"% {line}\n" for line in table.header_lines())
    return header + "% needs \\usepackage{booktabs}\n" + body


def write_table(table: Table, directory: Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` and ``<name>.tex`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, render in ((".md", to_markdown), (".csv", to_csv), (".tex", to_latex)):
        path = directory / f"{table.name}{suffix}"
        path.write_text(render(table), encoding="utf-8")
        paths.append(path)
    table.files = paths
    return paths

"""One static, offline HTML page: what the rows say, then the figures and tables behind it.

Order: a banner (the commit the rows measured, the machine, the software, when), the claims
of the Neural ODE paper and its follow-ups with their computed verdicts
(``odebench.report.claims``), the figures, the tables (long ones collapsed, each linked to its
CSV), the definitions of the problems and metrics, how to get the asv benchmark history, and
how to cite.

The page loads nothing from outside: styles are inline, images and table files are linked by
paths relative to the page, and every relative link points at a file the report wrote (or a
trainer's PNG that exists). On the page bytes are shown in MB, seconds in ms or s (per
column), and test errors in percent with two decimals; the tables' files keep raw values.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from html import escape, unescape
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.environment import Provenance, git_commit
from odebench.report.cite import REGENERATE_COMMAND, bibtex
from odebench.report.claims import CONFIRMED, NOT_MEASURED, PARTLY, REFUTED, Claim
from odebench.report.figures import FIGURES, FigureFile
from odebench.report.tables import Table

__all__ = [
    "ASV_SERVE_COMMAND",
    "LONG_TABLE_ROWS",
    "dead_links",
    "render_html",
    "trainer_figures",
    "write_html",
]

#: How to get the asv report: record and publish it, then serve it on loopback (it fetches
#: its data, so file:// does not work).
ASV_SERVE_COMMAND = "odebench serve --dir reports/asv --port 8080"
ASV_RECORD_COMMAND = "nox -s bench"

#: Tables with more rows than this are collapsed in a <details> element.
LONG_TABLE_ROWS = 15

#: Columns shown in percent on the page (they hold fractions).
PERCENT_COLUMNS = frozenset({"test_error"})

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 80em; padding: 0 1.5em 3em;
       color: #222; line-height: 1.4; }
header.banner { background: #f4f6f8; border-bottom: 1px solid #ccd; margin: 0 -1.5em 1em;
                padding: 0.8em 1.5em; }
header.banner h1 { margin: 0 0 0.3em; }
header.banner dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1em 1em;
                   margin: 0; font-size: 0.9em; }
header.banner dt { color: #555; }
header.banner dd { margin: 0; overflow-wrap: anywhere; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.3em 1.2em; }
h2 { border-bottom: 2px solid #444; padding-bottom: 0.2em; margin-top: 2em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right;
         vertical-align: top; }
th { border-bottom: 2px solid #444; background: #fafafa; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.failed td, td.failed { color: #b00020; background: #fff0f0; }
table.claims td { text-align: left; }
table.claims td.evidence { font-size: 0.95em; }
table.claims ul { margin: 0; padding-left: 1.1em; }
.verdict { font-weight: bold; padding: 0.1em 0.4em; border-radius: 0.3em; white-space: nowrap; }
.v-confirmed { background: #dff3e0; color: #1b5e20; }
.v-refuted { background: #fde0e0; color: #b00020; }
.v-partly { background: #fff3cd; color: #7a5200; }
.v-not-measured { background: #eceff1; color: #455a64; }
.provenance { color: #555; font-size: 0.8em; overflow-wrap: anywhere; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; }
.sentence { font-weight: 600; }
details > summary { cursor: pointer; color: #0645ad; margin: 0.3em 0; }
code, pre { background: #f3f3f3; padding: 0.1em 0.3em; }
pre { padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
dl.defs dt { font-weight: 600; margin-top: 0.4em; }
dl.defs dd { margin-left: 1.5em; }
table.problems td { overflow-wrap: anywhere; min-width: 5em; }
table.problems td.definition { min-width: 20em; }
"""

_VERDICT_CLASS = {CONFIRMED: "v-confirmed", REFUTED: "v-refuted", PARTLY: "v-partly",
                  NOT_MEASURED: "v-not-measured"}

_TRAINER_ID = "trainer-figures"
_TRAINER_TITLE = "Model figures drawn by the trainers"
#: What each trainer's PNG shows, by the model its file name starts with.
_TRAINER_CAPTIONS = (
    ("cnf_", "Continuous normalizing flow: the data, the learned density and samples"),
    ("latent_ode", "Latent ODE on spirals: observed points, interpolation and extrapolation"),
    ("gru", "GRU baseline on spirals: observed points, interpolation and extrapolation"),
    ("anode_toy", "Augmented neural ODE on the flip toy: trajectories of the two inputs"),
    ("node_toy", "Neural ODE on the flip toy: trajectories of the two inputs"),
    ("odenet", "ODE-Net on digits: function evaluations per training iteration"),
    ("anode_net", "Augmented ODE-Net on digits: function evaluations per training iteration"),
)

#: Metric definitions shown on the page (what each error column measures, over what).
METRICS: tuple[tuple[str, str], ...] = (
    ("sol_error", "Relative L2 error of the solution at the final output time: "
                  "||y - y_ref||_2 / ||y_ref||_2 over every component of the state (all batch "
                  "entries together), against the problem's float64 reference "
                  "(odebench.measure.relative_l2)."),
    ("sol_error_series, series_max_error", "The same relative L2 error at each output time; "
                  "series_max_error is its largest value (the final-time error alone flatters "
                  "some solvers)."),
    ("grad_error", "Relative L2 error of the gradient of the loss with respect to (y0, "
                   "parameters), concatenated into one vector, against the float64 "
                   "forward-sensitivity reference (odebench.reference.gradient, SciPy). The loss "
                   "is a fixed, seeded weighting of the outputs (Problem.loss_weights)."),
    ("scd", "Significant correct digits at the final time: -log10(max_i |y_i - ref_i| / "
            "max(|ref_i|, floor)), the floor being the problem's absolute tolerance scale "
            "(Problem.atol), so a component near zero is judged by its absolute error "
            "(odebench.measure.scd). Larger is better; 8 means 8 correct digits."),
    ("recon_error", "Backsolve only: relative L2 error of the state y(t0) that the backward "
                    "integration reconstructs."),
    ("nfe_forward, nfe_backward", "Vector-field evaluations in the forward solve and in the "
                                  "backward pass (a vector-Jacobian product counts as one)."),
    ("saved_bytes", "Bytes autograd saved during the forward pass plus those the gradient "
                    "method keeps itself (shown in MB, 10^6 bytes)."),
    ("peak_rss_bytes", "Peak resident set of a fresh subprocess (shown in MB)."),
    ("wall_*_s", "Median wall clock over repeats (shown in ms or s)."),
    ("overhead_ratio", "wall / (NFE x the wall of one vector-field evaluation): 1 means no "
                       "cost beyond the evaluations."),
    ("status", "ok, or why the run stopped (max_steps, step_underflow, nonfinite, timeout, "
               "error); a stopped run is shown in red with what it measured before stopping."),
)


def _href(path: Path, base: Path) -> str:
    """``path`` relative to the folder ``base``, with forward slashes."""
    return escape(Path(os.path.relpath(path, base)).as_posix(), quote=True)


def _provenance(provenance: Provenance) -> str:
    parts = " &middot; ".join(
        f"{escape(label)} <b>{escape(text)}</b>" for label, text in provenance.items()
    )
    return f'<p class="provenance">{parts}</p>'


# --------------------------------------------------------------------------- banner


def _banner(provenance: Provenance, rows: pd.DataFrame | None, head: str | None) -> str:
    commits = provenance.commit
    built = ""
    if head and head not in [c.strip() for c in commits.split(",")]:
        built = f" (page built from HEAD <code>{escape(head)}</code>)"
    stopped = ""
    if rows is not None and "status" in rows.columns and len(rows):
        counts = rows.loc[rows["status"] != "ok", "status"].value_counts()
        if len(counts):
            stopped = "; stopped: " + ", ".join(f"{n} {escape(str(s))}"
                                                for s, n in counts.items())
    software = ", ".join(f"{name} {text}" for name, text in (
        ("Python", provenance.python), ("numpy", provenance.numpy),
        ("torch", provenance.torch), ("scipy", provenance.scipy),
        ("torchdiffeq", provenance.torchdiffeq), ("torchode", provenance.torchode),
        ("odebench", provenance.odebench)))
    machine = escape(provenance.machine)
    if "torch threads" not in provenance.machine:
        machine += " (torch threads while timing: not recorded in these rows)"
    listed = [c.strip() for c in commits.split(",") if c.strip()]
    if len(listed) > 1 or any(c.endswith("-dirty") for c in listed):
        dirty = sum(c.endswith("-dirty") for c in listed)
        built += (f" <strong>Exploratory build: these rows come from {len(listed)} commits"
                  f"{f' ({dirty} dirty)' if dirty else ''}, not from one clean commit's run; "
                  "each table lists its commits.</strong>")
    items = (
        ("rows measured commit", f"<code>{escape(commits)}</code>{built}"),
        ("machine", machine),
        ("software", escape(software)),
        ("measured (UTC)", escape(provenance.times)),
        ("rows", f"{provenance.rows}{stopped}"),
    )
    body = "".join(f"<dt>{label}</dt><dd>{text}</dd>" for label, text in items)
    return f'<header class="banner"><h1>odebench report</h1><dl>{body}</dl></header>\n'


# --------------------------------------------------------------------------- claims


def _verdict(verdict: str) -> str:
    return f'<span class="verdict {_VERDICT_CLASS[verdict]}">{escape(verdict)}</span>'


def _claims(claims: Sequence[Claim], anchors: set[str]) -> str:
    if not claims:
        return ""
    rows = []
    for claim in claims:
        parts = "".join(
            f"<li><b>{escape(p.name)}</b> {_verdict(p.verdict)} {escape(p.evidence)}</li>"
            for p in claim.parts
        )
        links = ", ".join(
            f'<a href="#{escape(link.anchor)}">{escape(link.kind)} {escape(link.name)}</a>'
            for link in claim.links if link.anchor in anchors
        ) or "none built"
        data = f"<br><i>Data:</i> {escape(claim.data)}." if claim.data else ""
        rows.append(
            f'<tr id="claim-{escape(claim.key)}"><td>({escape(claim.key)})</td>'
            f"<td>{escape(claim.statement)}<br><i>{escape(claim.source)}</i>{data}</td>"
            f"<td>{_verdict(claim.verdict)}</td>"
            f'<td class="evidence"><ul>{parts}</ul></td><td>{links}</td></tr>'
        )
    return (
        '<h2 id="claims">Claims of the Neural ODE paper and its follow-ups, judged from these '
        'rows</h2>\n'
        "<p>Each verdict and number below is computed from the results rows by "
        "<code>odebench.report.claims</code> (thresholds stated with each part); "
        '<a href="tables/claims.md">claims.md</a> holds the same text.</p>'
        '<div class="scroll"><table class="claims"><thead><tr><th class="text"></th>'
        '<th class="text">claim</th><th class="text">verdict</th>'
        '<th class="text">the numbers behind it</th><th class="text">see</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>\n"
    )


# --------------------------------------------------------------------------- figures


def _figure_docs() -> dict[str, str]:
    """What each figure shows: the first paragraph of its drawing function's docstring."""
    docs = {}
    for entry in FIGURES:
        name = getattr(entry, "name", None) or entry[0]
        draw = getattr(entry, "draw", None) or entry[-1]
        text = (getattr(draw, "__doc__", None) or "").strip().split("\n\n")[0]
        docs[name] = " ".join(text.replace("``", "").split())
    return docs


def _figure(figure: FigureFile, base: Path, docs: dict[str, str]) -> str:
    shown = next((p for p in figure.files if p.suffix == ".svg"), figure.files[0])
    links = " ".join(
        f'<a href="{_href(path, base)}">{escape(path.suffix.lstrip("."))}</a>'
        for path in figure.files
    )
    caption = getattr(figure, "caption", None)
    sentence = getattr(figure, "sentence", None)
    if sentence is None:  # the builder's FigureFile.caption is its computed sentence
        sentence, caption = caption, None
    caption = caption or docs.get(figure.name, "")
    sentence_html = f'<p class="sentence">{escape(sentence)}</p>' if sentence else ""
    return (
        f'<section id="figure-{escape(figure.name)}"><h3>{escape(figure.title)}</h3>'
        f'<figure><img src="{_href(shown, base)}" alt="{escape(caption or figure.title, True)}">'
        f"<figcaption>{sentence_html}<p>{escape(caption)} Files: {links}.</p>"
        f"{_provenance(figure.provenance)}</figcaption></figure></section>"
    )


def trainer_figures(tables: Sequence[Table]) -> list[Path]:
    """The existing PNG files named in the tables' rows (``extra["figures"]``), once each,
    sorted by file name; paths relative to the working directory as recorded."""
    found = {
        Path(os.path.normpath(path))
        for table in tables
        for path in table.row_figures
        if path.suffix.lower() == ".png" and path.is_file()
    }
    return sorted(found, key=lambda path: (path.name, path.as_posix()))


def _trainer_caption(path: Path) -> str:
    """What a trainer's PNG shows, from its file name (``<model>_<data>_<gradient>.png``)."""
    prefix, what = next(((p, text) for p, text in _TRAINER_CAPTIONS if path.name.startswith(p)),
                        ("", "Figure drawn by the model's trainer"))
    tokens = path.stem[len(prefix):].strip("_").split("_")
    gradient = next((g for g in ("backprop", "backsolve", "interpolated", "checkpointed")
                     if g in tokens), None)
    detail = " ".join(t for t in tokens if t and t not in (gradient, "nfe", "baseline"))
    notes = [*([detail] if detail else []), *([f"gradient: {gradient}"] if gradient else [])]
    return what + (f" ({'; '.join(notes)})." if notes else ".")


def _trainer_section(paths: Sequence[Path], base: Path) -> str:
    """The section embedding the trainers' PNGs, collapsed, each with what it shows."""
    if not paths:
        return ""
    items = "".join(
        f'<figure><img src="{_href(path, base)}" alt="{escape(_trainer_caption(path), True)}">'
        f"<figcaption>{escape(_trainer_caption(path))} File: "
        f'<a href="{_href(path, base)}">{escape(path.name)}</a></figcaption></figure>'
        for path in paths
    )
    return (f'<h3 id="{_TRAINER_ID}">{_TRAINER_TITLE}</h3>\n<details><summary>Show '
            f"{len(paths)} figures</summary>{items}</details>\n")


# --------------------------------------------------------------------------- tables


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        not (isinstance(value, float) and math.isnan(value))


def _unit(column: str, values: Iterable[Any]) -> tuple[str, float]:
    """The page unit of a column and the factor its raw values are multiplied by."""
    if column.endswith("_bytes"):
        return "MB", 1e-6
    if column.endswith("_s"):
        numbers = [abs(v) for v in values if _is_number(v) and math.isfinite(v)]
        small = bool(numbers) and sorted(numbers)[len(numbers) // 2] < 1.0
        return ("ms", 1e3) if small else ("s", 1.0)
    if column in PERCENT_COLUMNS:
        return "%", 100.0
    return "", 1.0


def _scaled(value: Any, factor: float, unit: str) -> str:
    number = value * factor
    if unit == "%":
        return f"{number:.2f}"
    return f"{number:.3g}"


def _table(table: Table, base: Path) -> str:
    frame = table.frame
    display = table.display()
    columns = list(frame.columns)
    if "status" in columns:  # the status right after the identifying columns
        keys = [c for c in columns if c in table.keys]
        columns = [*keys, "status", *(c for c in columns if c not in keys and c != "status")]
    numeric = dict(zip(frame.columns, table.numeric(), strict=True))
    # the results column whose unit a table column takes: a pivot's cells hold its measure
    units = {c: _unit(table.pivot if table.pivot and c not in table.keys else str(c), frame[c])
             for c in columns}
    head = "".join(
        f'<th{"" if numeric[c] else " class=text"}>'
        f"{escape(str(c)).replace('_', '_<wbr>')}"
        f"{f' ({units[c][0]})' if units[c][0] else ''}</th>"
        for c in columns
    )
    body = []
    for index in range(len(frame)):
        failed = "status" in frame.columns and frame["status"].iloc[index] not in ("ok", None)
        cells = []
        for c in columns:
            raw = frame[c].iloc[index]
            unit, factor = units[c]
            text = _scaled(raw, factor, unit) if unit and _is_number(raw) else \
                display[c].iloc[index]
            classes = ([] if numeric[c] else ["text"]) + (
                ["failed"] if table.pivot and c not in table.keys and isinstance(raw, str) else [])
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{escape(text)}</td>")
        body.append(f"<tr{' class=failed' if failed else ''}>{''.join(cells)}</tr>")
    links = " ".join(
        f'<a href="{_href(path, base)}">{escape(path.suffix.lstrip("."))}</a>'
        for path in table.files
    )
    csv = next((p for p in table.files if p.suffix == ".csv"), None)
    fixed = f"<p>Fixed: {escape(table.fixed_text())}</p>" if table.fixed else ""
    caption = getattr(table, "caption", None)
    sentence = getattr(table, "sentence", None)
    caption_html = (f'<p class="sentence">{escape(sentence)}</p>' if sentence else "") + (
        f"<p>{escape(caption)}</p>" if caption else "")
    grid = (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")
    if len(frame) > LONG_TABLE_ROWS:
        csv_link = f' or open the <a href="{_href(csv, base)}">CSV</a>' if csv else ""
        grid = (f"<details><summary>Show all {len(frame)} rows</summary>{grid}</details>"
                f"<p>{len(frame)} rows: click above to show them{csv_link}.</p>")
    return (
        f'<section id="table-{escape(table.name)}"><h3>{escape(table.title)}</h3>'
        f"{caption_html}<p>Studies: {escape(', '.join(table.studies))}. Files: {links}</p>"
        f"{fixed}{_provenance(table.provenance)}{grid}</section>"
    )


# --------------------------------------------------------------------------- definitions


def _vector(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _problems(rows: pd.DataFrame | None) -> str:
    """A table of the registered problems that the rows ran: definition, y0, interval, truth."""
    if rows is None or "problem" not in rows.columns:
        return ""
    from odebench import problems as registry
    from odebench.reference import settings

    names = [n for n in sorted(set(rows["problem"].dropna())) if n in registry.names()]
    if not names:
        return ""
    body = []
    for name in names:
        problem = registry.get(name)
        kind = "stiff" if problem.stiff else "chaotic" if problem.chaotic else "non-stiff"
        y0 = problem.y0
        values = y0.flatten().tolist()
        shown = _vector(values) if len(values) <= 8 else \
            f"{_vector(values[:4])[:-1]}, ...), shape {list(y0.shape)}"
        t0, t1 = float(problem.t_eval[0]), float(problem.t_eval[-1])
        ts = sorted({float(t) for t in pd.to_numeric(rows.loc[rows["problem"] == name, "T"],
                                                     errors="coerce").dropna()}) \
            if "T" in rows.columns else []
        interval = f"[{t0:g}, {t1:g}], {len(problem.t_eval)} output times"
        if ts:
            interval += "; the rows' T: " + ", ".join(f"{t:g}" for t in ts)
        if problem.reference is not None:
            truth = problem.reference.source
        elif problem.closed_form is not None:
            truth = "closed form"
        else:
            ref = settings.resolve(problem, None, None, None)
            truth = f"SciPy {ref.method}, float64, rtol {ref.rtol:g}, atol {ref.atol:g}"
        cells = (name, kind, str(y0.numel()), shown, interval)
        body.append("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' for c in cells)
                    + f'<td class="text definition">{escape(problem.description)}</td>'
                    + f'<td class="text">{escape(truth)}</td></tr>')
    head = "".join(f'<th class="text">{h}</th>' for h in (
        "problem", "kind", "n", "y0", "interval", "definition and source", "reference (truth)"))
    return (
        '<h2 id="problems">Problems</h2>\n<p>The problems these rows ran, from the registry '
        "(<code>odebench problems</code>); y0 and the interval are the defaults, a study "
        "may vary T.</p>"
        f'<div class="scroll"><table class="problems"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>\n"
    )


def _metrics() -> str:
    items = "".join(f"<dt>{escape(name)}</dt><dd>{escape(text)}</dd>" for name, text in METRICS)
    return f'<h2 id="metrics">Metrics</h2>\n<dl class="defs">{items}</dl>\n'


def _asv() -> str:
    return (
        '<h2 id="asv">Benchmark history (asv)</h2>\n'
        "<p>The asv report (timings, NFE and gradient errors over commits, and its regressions "
        "view) is not part of this folder: it is built from the asv results kept in "
        "<code>.asv/results/</code> of your checkout. To get it:</p><ol>"
        f"<li>record this commit and publish: <code>{escape(ASV_RECORD_COMMAND)}</code> "
        "(each run adds a commit to <code>.asv/results/</code>; nothing removes older ones, "
        "so the regressions view compares with the previous recorded commit);</li>"
        f"<li>serve it on loopback: <code>{escape(ASV_SERVE_COMMAND)}</code>, then open "
        "<code>http://127.0.0.1:8080/</code> (asv's page fetches its data, so it does not "
        "work from file://). The gradient-error graphs read best on a log scale: the command "
        "prints their log-scale addresses.</li></ol>"
        "<p>How to publish the results to a branch or folder (as numpy and scipy do): see "
        "README.md, section \"Benchmark history\".</p>\n"
    )


def _cite(provenance: Provenance, head: str | None) -> str:
    year = provenance.times[:4] if provenance.times[:4].isdigit() else "n/a"
    commit = head or provenance.commit
    return (
        '<h2 id="cite">Cite this</h2>\n<p>odebench at the commit that built this page, and '
        "the works whose methods and test sets it uses (also in <code>CITATION.cff</code>). "
        f"Regenerate this page with <code>{escape(REGENERATE_COMMAND)}</code>; from rows "
        "already in <code>reports/data/</code>: <code>odebench report</code>.</p>"
        f"<pre>{escape(bibtex(provenance.odebench, commit, year))}</pre>\n"
    )


# --------------------------------------------------------------------------- page


def render_html(
    tables: Sequence[Table],
    figures: Sequence[FigureFile],
    provenance: Provenance,
    base: Path,
    *,
    claims: Sequence[Claim] = (),
    rows: pd.DataFrame | None = None,
    head: str | None = None,
) -> str:
    """The page's HTML; file links are made relative to the folder ``base`` holding it.

    ``claims`` are shown first, ``rows`` (the results rows) give the problem definitions and
    the count of stopped runs, ``head`` is the commit that builds the page (named in the
    banner when the rows measured another).
    """
    trained = trainer_figures(tables)
    anchors = {f"table-{t.name}" for t in tables} | {f"figure-{f.name}" for f in figures}
    sections = [
        ("claims", "Claims") if claims else None,
        ("figures", "Figures") if figures or trained else None,
        ("tables", "Tables") if tables else None,
        ("problems", "Problems") if rows is not None and len(rows) else None,
        ("metrics", "Metrics"), ("asv", "Benchmark history"), ("cite", "Cite this"),
    ]
    toc = "".join(f'<li><a href="#{key}">{label}</a></li>' for key, label in filter(None, sections))
    empty = "<p>No results rows: nothing to show.</p>" if not tables and not figures else ""
    docs = _figure_docs()
    figures_html = ""
    if figures or trained:
        figures_html = ("<h2 id=\"figures\">Figures</h2>\n"
                        + "".join(_figure(f, base, docs) for f in figures)
                        + _trainer_section(trained, base))
    tables_html = ""
    if tables:
        tables_html = (
            '<h2 id="tables">Tables</h2>\n<p>Rows in red are runs that stopped (their status '
            "says why); a red cell in a grid is a stopped run. Long tables are collapsed; "
            "every table links its Markdown, CSV and LaTeX files.</p>"
            + "".join(_table(t, base) for t in tables)
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>odebench report</title><style>{_STYLE}</style></head><body>\n"
        f"{_banner(provenance, rows, head)}"
        f"{empty}<nav><ul>{toc}</ul></nav>\n"
        f"{_claims(claims, anchors)}"
        f"{figures_html}\n{tables_html}\n"
        f"{_problems(rows)}{_metrics()}{_asv()}{_cite(provenance, head)}"
        "</body></html>\n"
    )


def write_html(
    tables: Sequence[Table],
    figures: Sequence[FigureFile],
    provenance: Provenance,
    out_dir: Path,
    *,
    claims: Sequence[Claim] = (),
    rows: pd.DataFrame | None = None,
    head: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` and return its path (``head`` defaults to this checkout's
    commit, ``git_commit()``).

    Raises ``FileNotFoundError`` naming the links when the page would link a missing file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    page = render_html(tables, figures, provenance, out_dir, claims=claims, rows=rows,
                       head=head if head is not None else git_commit())
    path.write_text(page, encoding="utf-8")
    missing = dead_links(path)
    if missing:
        raise FileNotFoundError(f"{path} links missing files: {', '.join(missing)}")
    return path


#: A relative link of a page: an ``href``/``src`` value that is neither an anchor nor a URL.
_RELATIVE_LINK = re.compile(r"""(?:src|href)\s*=\s*["'](?!#|[a-z][a-z0-9+.-]*:|//)([^"'#]+)""",
                            re.IGNORECASE)


def dead_links(page: Path) -> list[str]:
    """The relative links of the HTML file ``page`` that point at no existing file."""
    text = page.read_text(encoding="utf-8")
    links = dict.fromkeys(unescape(link) for link in _RELATIVE_LINK.findall(text))
    return [link for link in links if not (page.parent / link).is_file()]

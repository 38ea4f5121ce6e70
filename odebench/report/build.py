"""Build the report: tables, figures and the HTML page, from the results rows only.

``python -m odebench.report.build RESULTS_DIR OUT_DIR`` does the same from a shell.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from odebench.environment import Provenance
from odebench.errors import InvalidInputError
from odebench.report.claims import evaluate_claims, write_claims
from odebench.report.equal_accuracy import equal_accuracy_table, stiff_equal_accuracy_table
from odebench.report.figures import build_figures
from odebench.report.html import write_html
from odebench.report.tables import build_tables, write_table
from odebench.results import ResultsStore

__all__ = ["MixedCommitsError", "build_report", "check_commits", "main"]


class MixedCommitsError(InvalidInputError):
    """The rows of a report come from a dirty tree or from more than one commit."""


def check_commits(rows: pd.DataFrame) -> None:
    """Refuse rows from a dirty tree (commit ending in ``-dirty``) or from several commits,
    naming each commit and its row count."""
    if rows.empty or "commit" not in rows.columns:
        return
    counts = rows["commit"].fillna("unknown").astype(str).value_counts().sort_index()
    dirty = [c for c in counts.index if c.endswith("-dirty")]
    if len(counts) == 1 and not dirty:
        return
    listing = ", ".join(f"{commit} ({n} rows)" for commit, n in counts.items())
    problem = "a dirty tree" if dirty and len(counts) == 1 else (
        f"{len(counts)} commits" + (" (some dirty)" if dirty else ""))
    raise MixedCommitsError(
        f"the results rows come from {problem}: {listing}. A published report is built from "
        "one clean commit's rows; rerun the studies there, or pass allow_mixed=True "
        "(`odebench report --allow-mixed`) for an exploratory build whose tables list their "
        "commits."
    )


def build_report(
    results_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
    allow_mixed: bool = False,
) -> dict[str, list[Path]]:
    """Write the report of the rows under ``results_dir`` into ``out_dir``.

    Raises :class:`MixedCommitsError` when the rows come from a dirty tree or from more
    than one commit, unless ``allow_mixed`` (then each table's notes list its commits).
    Raises ``odebench.report.select.AmbiguousCellError`` when two rows would feed one
    table cell or figure point.

    Writes ``out_dir/tables/<name>.{md,csv,json,tex}`` for each table whose study has
    rows, ``out_dir/tables/claims.md`` (the paper's claims judged from the rows),
    ``out_dir/figures/<name>.{png,svg}`` for each figure with plottable rows,
    and ``out_dir/index.html``. Returns the written paths under the keys
    ``"tables"``, ``"claims"``, ``"figures"`` and ``"html"``.
    """
    out = Path(out_dir)
    rows = ResultsStore(results_dir).rows()
    if not allow_mixed:
        check_commits(rows)
    headline = [t for t in (equal_accuracy_table(rows), stiff_equal_accuracy_table(rows)) if t]
    tables = headline + build_tables(rows)
    table_files = [path for table in tables for path in write_table(table, out / "tables")]
    figures = build_figures(rows, out / "figures")
    claims = evaluate_claims(rows)
    claims_file = write_claims(claims, out / "tables")
    page = write_html(tables, figures, Provenance.from_rows(rows), out, claims=claims, rows=rows)
    return {
        "tables": table_files,
        "claims": [claims_file],
        "figures": [path for figure in figures for path in figure.files],
        "html": [page],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: build the report and list the files written."""
    parser = argparse.ArgumentParser(
        prog="python -m odebench.report.build",
        description="Build tables, figures and index.html from a results directory.",
    )
    parser.add_argument("results_dir", type=Path, help="folder of <study>.jsonl files")
    parser.add_argument("out_dir", type=Path, help="folder to write the report into")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="build from rows of several or dirty commits (exploration only)")
    args = parser.parse_args(argv)
    for kind, paths in build_report(args.results_dir, args.out_dir, args.allow_mixed).items():
        print(f"{kind}: {len(paths)} file(s)")
        for path in paths:
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the report: tables, figures and the HTML page, from the results rows only.

``python -m odebench.report.build RESULTS_DIR OUT_DIR`` does the same from a shell.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from odebench.environment import Provenance
from odebench.report.claims import evaluate_claims, write_claims
from odebench.report.figures import build_figures
from odebench.report.html import write_html
from odebench.report.tables import build_tables, write_table
from odebench.results import ResultsStore

__all__ = ["build_report", "main"]


def build_report(
    results_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> dict[str, list[Path]]:
    """Write the report of the rows under ``results_dir`` into ``out_dir``.

    Writes ``out_dir/tables/<name>.{md,csv,tex}`` for each table whose study has
    rows, ``out_dir/tables/claims.md`` (the paper's claims judged from the rows),
    ``out_dir/figures/<name>.{png,svg}`` for each figure with plottable rows,
    and ``out_dir/index.html``. Returns the written paths under the keys
    ``"tables"``, ``"claims"``, ``"figures"`` and ``"html"``.
    """
    out = Path(out_dir)
    rows = ResultsStore(results_dir).rows()
    tables = build_tables(rows)
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
    args = parser.parse_args(argv)
    for kind, paths in build_report(args.results_dir, args.out_dir).items():
        print(f"{kind}: {len(paths)} file(s)")
        for path in paths:
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

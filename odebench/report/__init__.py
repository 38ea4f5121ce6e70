"""Reports from results rows: tables (Markdown, CSV, LaTeX), figures (PNG, SVG), the Neural ODE
paper's claims judged from the rows (``claims``), one HTML page (``html``).

``build_report(results_dir, out_dir)`` is the entry point. It is imported on
first use, so that ``odebench.report.asv_html`` stays free of pandas and
matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from odebench.report.build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

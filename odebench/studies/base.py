"""A study is a declared grid of runs; the runner turns each point into one results row.

``Study.grid(mode)`` lists the runs (``"quick"`` for CI, ``"full"`` for publication) as
:class:`~odebench.results.Row` objects holding only the run-defining columns; ``Study.execute``
fills in the measurements of one row. The runner skips rows already in the store (a rerun
resumes), records failures as status rows (never a missing row) and shows a progress bar.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)
from odebench.results import ResultsStore, Row, key_of

log = logging.getLogger("odebench.studies")

MODES = ("quick", "full")


@dataclass(frozen=True)
class Settings:
    """What the command line decides for every run of a study.

    Attributes:
        mode: "quick" (CI-sized grid) or "full" (publication grid).
        device: "cpu" or "cuda" (or "cuda:N").
        dtype: "float64" or "float32".
        threads: torch intra-op threads during timing (1 by default: figures comparable).
    """

    mode: str = "quick"
    device: str = "cpu"
    dtype: str = "float64"
    threads: int = 1


@dataclass(frozen=True)
class Study:
    """A named grid of runs and how to measure one."""

    name: str
    description: str
    grid: Callable[[Settings], list[Row]]
    execute: Callable[[Row, Settings], Row]


def status_of(err: BaseException) -> str:
    """The results ``status`` for an exception a run raised."""
    if isinstance(err, MaxStepsExceededError):
        return "max_steps"
    if isinstance(err, NonFiniteError):
        return "nonfinite"
    if isinstance(err, StepSizeUnderflowError):
        return "step_underflow"
    if type(err).__name__ == "WallBudgetExceeded":
        return "timeout"
    return "error"


def run_study(study: Study, settings: Settings, results_dir: Path,
              progress: bool = True) -> tuple[int, int]:
    """Run every grid point of ``study`` not yet in ``results_dir``.

    Returns (rows written now, rows skipped because already present).
    """
    if settings.mode not in MODES:
        raise InvalidInputError(f"unknown mode '{settings.mode}'; valid: {', '.join(MODES)}")
    store = ResultsStore(results_dir)
    points = study.grid(settings)
    todo = [p for p in points if not store.has(key_of(p))]
    log.info("study %s (%s): %d runs, %d already recorded in %s", study.name, settings.mode,
             len(points), len(points) - len(todo), store.path(study.name))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[current]}"))
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(study.name, total=len(todo), current="")
        for point in todo:
            bar.update(task, current=_label(point))
            try:
                row = study.execute(point, settings)
            except Exception as err:  # a failed run is a row, never a crash of the study
                log.debug("run failed: %s", traceback.format_exc())
                row = Row(**{**point.__dict__, "status": status_of(err),
                             "message": f"{type(err).__name__}: {err}"[:2000]})
            store.append(row)
            bar.advance(task)
    return len(todo), len(points) - len(todo)


def _label(row: Row) -> str:
    parts = [row.problem, row.backend, row.method, row.gradient or ""]
    if row.rtol is not None:
        parts.append(f"rtol={row.rtol:g}")
    if row.T is not None:
        parts.append(f"T={row.T:g}")
    return " ".join(p for p in parts if p)

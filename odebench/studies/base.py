"""A study is a declared grid of runs; the runner turns each point into one results row.

``Study.grid(mode)`` lists the runs (``"quick"`` for CI, ``"full"`` for publication) as
:class:`~odebench.results.Row` objects holding only the run-defining columns; ``Study.execute``
fills in the measurements of one row. The runner validates the settings before any run, holds
the study's store lock for the whole run, stamps every point with the grid ``mode``, ``threads``
and ``commit`` (all in the row key), skips rows already in the store (a rerun at the same commit
resumes; ``error`` rows are retried unless ``retry=False``), records failures as status rows
(never a missing row) and shows a progress bar. With a dask ``client`` the points run as tasks
(:mod:`odebench.studies.distributed`) and this process stays the only writer of the store.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from odebench.environment import environment
from odebench.errors import (
    InvalidInputError,
    MaxStepsExceededError,
    NonFiniteError,
    StepSizeUnderflowError,
)
from odebench.results import ResultsStore, Row, key_of

log = logging.getLogger("odebench.studies")

MODES = ("quick", "full")
DTYPES = ("float64", "float32")
#: Studies whose wall-clock columns are headlines: on a cluster, one of their tasks per machine
#: at a time (``timing_exclusive`` rows).
WALL_CLOCK_STUDIES = frozenset({"overhead", "work_precision"})


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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"unknown mode '{self.mode}'; valid: {', '.join(MODES)}")
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"unknown dtype '{self.dtype}'; valid: {', '.join(DTYPES)}")
        if not (self.device == "cpu" or str(self.device).startswith("cuda")):
            raise InvalidInputError(f"unknown device '{self.device}'; valid: cpu, cuda, cuda:N")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise InvalidInputError(f"threads must be a whole number >= 1, got {self.threads!r}")


@dataclass(frozen=True)
class RunSummary:
    """What one ``run_study`` did: rows written now, rows skipped (already recorded), and how
    many of the rows written have status ``error`` (a crashed run, retried by the next run)."""

    written: int
    skipped: int
    failed: int


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


def execute_point(study: Study, point: Row, settings: Settings) -> Row:
    """The finished row of one grid point: its measurements, or a status row if it raised."""
    try:
        return study.execute(point, settings)
    except Exception as err:  # a failed run is a row, never a crash of the study
        log.debug("run failed: %s", traceback.format_exc())
        return failed_row(point, status_of(err), f"{type(err).__name__}: {err}")


def failed_row(point: Row, status: str, message: str) -> Row:
    """``point`` as a stopped run with ``status`` and ``message`` (cut to 2000 characters)."""
    return dataclasses.replace(point, status=status, message=message[:2000])


def grid_points(study: Study, settings: Settings) -> list[Row]:
    """The study's grid, each point stamped with the key columns the settings and the code
    decide: ``mode``, ``threads`` and ``commit``."""
    commit = environment()["commit"]
    return [dataclasses.replace(p, mode=settings.mode, threads=settings.threads, commit=commit)
            for p in study.grid(settings)]


def run_study(study: Study, settings: Settings, results_dir: Path, progress: bool = True,
              retry: bool = True, client: Any = None) -> RunSummary:
    """Run every grid point of ``study`` not yet in ``results_dir``, holding the study's lock.

    ``retry`` runs the points whose recorded row has status ``error`` again. ``client``: a
    ``dask.distributed.Client`` to run the points on (``None``: in this process).
    """
    store = ResultsStore(results_dir)
    with store.lock(study.name, waiting=log.warning):
        points = grid_points(study, settings)
        done = store.recorded(study.name, retry=("error",) if retry else ())
        todo = [p for p in points if key_of(p) not in done]
        log.info("study %s (%s): %d runs, %d already recorded in %s", study.name, settings.mode,
                 len(points), len(points) - len(todo), store.path(study.name))
        failed = 0
        with _progress_bar(study.name, len(todo), progress) as advance:
            if client is None:
                rows: Iterator[Row] = (_serial(study, p, settings, advance) for p in todo)
            else:
                from odebench.studies.distributed import run_on_cluster

                rows = run_on_cluster(client, study, todo, settings, advance)
            for row in rows:
                store.append(row)
                failed += row.status == "error"
    return RunSummary(len(todo), len(points) - len(todo), failed)


def _serial(study: Study, point: Row, settings: Settings,
            advance: Callable[[Row | None, Row | None], None]) -> Row:
    advance(None, point)
    row = execute_point(study, point, settings)
    advance(row, None)
    return dataclasses.replace(row, timing_exclusive=True)


@contextmanager
def _progress_bar(name: str, total: int, enabled: bool
                  ) -> Iterator[Callable[[Row | None, Row | None], None]]:
    """The rich progress bar of a run, as ``advance(done, current)``: count a finished row
    and/or name the point now running."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[current]}"))
    with Progress(*columns, disable=not enabled, transient=False) as bar:
        task = bar.add_task(name, total=total, current="")

        def advance(done: Row | None, current: Row | None) -> None:
            if current is not None:
                bar.update(task, current=_label(current))
            if done is not None:
                bar.advance(task)

        yield advance


def _label(row: Row) -> str:
    parts = [row.problem, row.backend, row.method, row.gradient or ""]
    if row.rtol is not None:
        parts.append(f"rtol={row.rtol:g}")
    if row.T is not None:
        parts.append(f"T={row.T:g}")
    return " ".join(p for p in parts if p)

"""Task helpers for tests/test_distributed.py, imported by the cluster's workers (tests/ is on
their PYTHONPATH); not a test module."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from odebench.results import Row
from odebench.studies import get
from odebench.studies.base import Settings, Study

SUBSET = 4


def _subset(name: str, problem: str | None):
    def grid(settings: Settings) -> list[Row]:
        points = get(name).grid(settings)
        return [p for p in points if problem in (None, p.problem)][:SUBSET]
    return grid


def subset_study(name: str, problem: str | None = None) -> Study:
    """The first points (of ``problem``, if given) of a real study's quick grid, measured by the
    study's own execute."""
    return dataclasses.replace(get(name), grid=_subset(name, problem))


def _slow_grid(settings: Settings) -> list[Row]:
    return [Row(study="slow", problem=f"p{i}", backend="odebench", method="dopri5",
                dtype=settings.dtype, device=settings.device) for i in range(12)]


def _slow_execute(row: Row, settings: Settings) -> Row:
    time.sleep(0.4)
    return dataclasses.replace(row, nfe_forward=int(row.problem[1:]))


SLOW = Study("slow", "instant points that take 0.4 s each", _slow_grid, _slow_execute)


def _crash_grid(settings: Settings) -> list[Row]:
    return [Row(study="crash", problem=name, backend="odebench", method="dopri5",
                dtype=settings.dtype, device=settings.device) for name in ("ok", "boom", "raises")]


def _crash_execute(row: Row, settings: Settings) -> Row:
    if row.problem == "boom":  # the worker process dies, as if killed for memory
        with open(Path(os.environ["ODEBENCH_TEST_DIR"]) / "deaths.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        os._exit(1)
    if row.problem == "raises":
        raise ValueError("a run that raises")
    return dataclasses.replace(row, nfe_forward=1)


CRASH = Study("crash", "one point kills its worker, one raises", _crash_grid, _crash_execute)


def _timed_grid(settings: Settings) -> list[Row]:
    return [Row(study="overhead", problem=f"p{i}", backend="odebench", method="dopri5",
                dtype=settings.dtype, device=settings.device) for i in range(4)]


def _timed_execute(row: Row, settings: Settings) -> Row:
    """Log when the run starts and ends (wall clock, s) and hold for 0.3 s."""
    start = time.time()
    time.sleep(0.3)
    with open(Path(os.environ["ODEBENCH_TEST_DIR"]) / "timed.log", "a") as log:
        log.write(f"{start} {time.time()}\n")
    return dataclasses.replace(row, nfe_forward=1)


#: Named like a wall-clock study: at most one of its tasks runs on a machine at a time.
TIMED = Study("overhead", "runs that log their start and end", _timed_grid, _timed_execute)


def race_reference(cache_dir: str, log_path: str, start_at: float) -> tuple[int, list[float]]:
    """Compute one float64 reference in ``cache_dir``, logging each real computation (held
    open 1 s) to ``log_path``; returns (pid, the reference values)."""
    from odebench import problems
    from odebench.reference import solve

    os.environ["ODEBENCH_CACHE"] = cache_dir
    original = solve.run_forward

    def logged(*args, **kwargs):
        with open(log_path, "a") as log:
            log.write(f"computing in {os.getpid()}\n")
        time.sleep(1.0)  # a wide window: without a lock the other worker computes too
        return original(*args, **kwargs)

    solve.run_forward = logged
    try:
        time.sleep(max(0.0, start_at - time.time()))
        reference = solve.solution(problems.get("decay", T=0.5, n_points=3))
    finally:
        solve.run_forward = original
    return os.getpid(), reference.ys.ravel().tolist()

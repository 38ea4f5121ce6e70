"""What the studies share: building a grid row, and measuring one row through a backend."""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from odebench import backends, problems
from odebench.backends import RunSpec
from odebench.results import Row
from odebench.studies.base import Settings


def point(study: str, settings: Settings, problem: str, backend: str, method: str,
          gradient: str | None = None, rtol: float | None = None, atol: float | None = None,
          problem_kwargs: dict[str, Any] | None = None, **columns: Any) -> Row:
    """A grid point: the run-defining columns of a row. ``problem_kwargs`` rebuild the problem
    from the registry (kept in ``params``; their ``T``, if any, is also the T column); other
    keyword columns (width, batch, state_dim, seminorm, ...) are copied as they are."""
    params = dict(columns.pop("params", None) or {})
    if problem_kwargs:
        params["problem_kwargs"] = problem_kwargs
        columns.setdefault("T", problem_kwargs.get("T"))
    return Row(study=study, problem=problem, backend=backend, method=method, gradient=gradient,
               rtol=rtol, atol=atol, dtype=settings.dtype, device=settings.device,
               params=params or None, **columns)


def problem_of(row: Row) -> tuple[problems.Problem, dict[str, Any]]:
    """The registry problem a row names, with its keyword arguments."""
    kwargs = dict((row.params or {}).get("problem_kwargs", {}))
    return problems.get(row.problem, **kwargs), kwargs


class WallBudgetExceeded(Exception):
    """A run took longer than its study's wall budget."""


@contextmanager
def wall_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`WallBudgetExceeded` inside the block once ``seconds`` of wall clock passed
    (SIGALRM; only in the main thread, elsewhere no limit)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise WallBudgetExceeded(f"wall budget of {seconds:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_spec(row: Row, settings: Settings, **fields: Any) -> RunSpec:
    """The backend run a row describes (its float64 registry problem, method, tolerances,
    gradient) under ``settings``; ``fields`` set the other RunSpec fields."""
    problem, kwargs = problem_of(row)
    return RunSpec(problem=problem, method=row.method, rtol=row.rtol, atol=row.atol,
                   gradient=row.gradient, dtype=settings.dtype, device=settings.device,
                   threads=settings.threads, problem_kwargs=kwargs, **fields)


def measure(row: Row, settings: Settings, *, options: dict[str, Any] | None = None,
            repeats: int = 3, measure_rss: bool = False, wall_budget_s: float | None = None,
            run_budget_s: float = 600.0) -> Row:
    """Run ``row``'s configuration through its backend and return the row with measurements.

    ``wall_budget_s`` stops the timing repeats early; ``run_budget_s`` bounds the whole run (the
    row then has status "timeout"), so that a study always finishes.
    """
    spec = run_spec(row, settings, options=options, repeats=repeats, measure_rss=measure_rss,
                    wall_budget_s=wall_budget_s)
    with wall_limit(run_budget_s):
        result = backends.get(row.backend).solve(spec)
    columns = result.columns()
    if WallBudgetExceeded.__name__ in (columns.get("message") or ""):
        columns["status"] = "timeout"
    return dataclasses.replace(row, **columns)


def available_backends(names: tuple[str, ...]) -> list[str]:
    """The backends among ``names`` that can run here (torchode is optional)."""
    return [name for name in names if backends.get(name).available()[0]]

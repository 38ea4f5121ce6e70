"""Wall-clock timing: warm-up, median of repeats, pinned torch threads, CUDA synchronised.

Times are seconds of ``time.perf_counter``. The garbage collector is disabled during each timed
call (as ``timeit`` does), so a collection does not land in a measurement; :func:`median_wall`
collects once before its warm-up, never right before a timed call (a full collection walks the
heap and leaves the caches cold: it made a 3 ms solve ~1.7x slower than the same solve warm).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")


def synchronize(sync_cuda: bool = True) -> None:
    """Wait for queued CUDA work when ``sync_cuda`` and CUDA is initialised; else nothing."""
    if sync_cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], T], sync_cuda: bool = True) -> tuple[T, float]:
    """``(fn(), seconds)``: one call, synchronised before and after, with the GC held off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        synchronize(sync_cuda)
        start = time.perf_counter()
        result = fn()
        synchronize(sync_cuda)
        elapsed = time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()
    return result, elapsed


def median_wall(fn: Callable[[], object], repeats: int, warmup: int = 1, sync_cuda: bool = True,
                budget_s: float | None = None) -> tuple[float, list[float]]:
    """Median wall clock of ``fn()`` over ``repeats`` timed calls after ``warmup`` untimed ones.

    Args:
        fn: the work to time; its result is discarded.
        repeats: timed calls (>= 1).
        warmup: untimed calls first (>= 0).
        sync_cuda: synchronise CUDA around each call (a no-op without CUDA).
        budget_s: stop repeating once one timed call took longer than this (seconds).

    Returns:
        ``(median seconds, every timed call's seconds)``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    gc.collect()
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(repeats):
        _, seconds = timed(fn, sync_cuda)
        times.append(seconds)
        if budget_s is not None and seconds > budget_s:
            break
    return statistics.median(times), times


def median_iqr(samples: list[float]) -> tuple[float, float | None]:
    """``(median, interquartile range)`` of ``samples`` (seconds, at least one); the IQR is
    ``None`` below two samples. Quartiles by linear interpolation between order statistics
    (``statistics.quantiles(method="inclusive")``, numpy's default)."""
    if not samples:
        raise ValueError("median_iqr needs at least one sample")
    if len(samples) < 2:
        return float(samples[0]), None
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return statistics.median(samples), q3 - q1


@contextmanager
def pinned_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; the previous count is restored after."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

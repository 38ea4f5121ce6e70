"""Error metrics against a float64 truth, on numpy float64 arrays (dimensionless results)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def _f64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def relative_l2(x: ArrayLike, ref: ArrayLike) -> float:
    """``||x - ref||_2 / ||ref||_2`` over all entries; the absolute error when ``ref`` is zero.

    Shapes of ``x`` and ``ref`` must match. NaN in ``x`` gives NaN.
    """
    x, ref = _f64(x), _f64(ref)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {x.shape} vs reference {ref.shape}")
    err = float(np.linalg.norm((x - ref).ravel()))
    scale = float(np.linalg.norm(ref.ravel()))
    return err / scale if scale > 0 else err


def relative_error_series(ys: ArrayLike, ref_ys: ArrayLike) -> list[float]:
    """:func:`relative_l2` at each output time: ``ys``/``ref_ys`` are ``[T, *shape]``; length T."""
    ys, ref_ys = _f64(ys), _f64(ref_ys)
    if ys.shape != ref_ys.shape:
        raise ValueError(f"shapes differ: {ys.shape} vs reference {ref_ys.shape}")
    return [relative_l2(y, r) for y, r in zip(ys, ref_ys, strict=True)]


def scd(y: ArrayLike, ref: ArrayLike, floor: float) -> float:
    """Significant correct digits: ``-log10(max_i |y_i - ref_i| / max(|ref_i|, floor))``.

    ``floor`` (> 0) is the magnitude below which a component counts as zero, so a component
    near zero is judged by its absolute error divided by ``floor``. An exact match gives
    ``inf``; NaN in ``y`` gives NaN.
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    y, ref = _f64(y), _f64(ref)
    if y.shape != ref.shape:
        raise ValueError(f"shapes differ: {y.shape} vs reference {ref.shape}")
    worst = float(np.max(np.abs(y - ref) / np.maximum(np.abs(ref), floor)))
    if math.isnan(worst):
        return math.nan
    return math.inf if worst == 0.0 else -math.log10(worst)

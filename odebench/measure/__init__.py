"""Measuring honestly: NFE counting, wall clock, memory and error metrics.

Nothing here knows a backend or a study; :mod:`odebench.backends` uses these to measure every
backend the same way.
"""

from odebench.measure.errors import relative_error_series, relative_l2, scd
from odebench.measure.memory import (
    CudaPeakMeter,
    RssMeasurement,
    SavedTensorMeter,
    max_rss_bytes,
    peak_rss_subprocess,
)
from odebench.measure.nfe import CountingField
from odebench.measure.timing import (
    median_iqr,
    median_wall,
    pinned_threads,
    synchronize,
    timed,
)

__all__ = [
    "CountingField",
    "CudaPeakMeter",
    "RssMeasurement",
    "SavedTensorMeter",
    "max_rss_bytes",
    "median_iqr",
    "median_wall",
    "peak_rss_subprocess",
    "pinned_threads",
    "relative_error_series",
    "relative_l2",
    "scd",
    "synchronize",
    "timed",
]

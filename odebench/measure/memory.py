"""Memory, measured: bytes autograd saves for backward, and the peak RSS of a fresh process.

``SavedTensorMeter`` counts, through ``torch.autograd.graph.saved_tensors_hooks``, the storages
of the tensors saved for backward while its block runs, each storage once (keyed by device and
data pointer: a parameter or an input saved by many operations counts once, and so do views of
one storage, at the storage's full size). A storage counts while some saved tensor still refers
to it, so graphs built and freed inside the block do not add up; ``bytes`` is what is still
saved when the block ends (what the backward pass will need), ``peak_bytes`` the most at any
moment. Memory a gradient method keeps outside autograd (``Stats.saved_bytes``) is not seen.

``peak_rss_subprocess`` runs one solve in a fresh Python (``python -m
odebench.measure.rss_probe``) and reads there the resident set after ``import torch`` and the
problem's setup (the baseline), and its peak during a no-grad solve and during the run itself.
On Linux the peak is ``VmHWM`` of ``/proc/self/status``, reset before each solve through
``/proc/self/clear_refs``; ``ru_maxrss`` is no use there: a child inherits its parent's
high-water mark through fork and exec (a test process of 400 MB made every probe read 400 MB).
The subprocess runs with ``MALLOC_ENV``: glibc then serves every allocation above 64 KiB by
``mmap`` and returns it on ``free``, so that the resident set follows the live tensors instead
of the heap arenas' high-water mark (without both, the committed peak RSS was the same 376 MB
for every method, issue 13). ``CudaPeakMeter`` reads ``torch.cuda.max_memory_allocated``
around a block.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch

StorageKey = tuple[str, int]

#: Environment of the peak-RSS subprocess: fixed mmap threshold (64 KiB) and no heap trimming
#: threshold games (glibc mallopt(3): M_MMAP_THRESHOLD, M_TRIM_THRESHOLD; recipe of issue 13).
MALLOC_ENV: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


class _Saved:
    """A saved tensor as the graph holds it; releases its storage from the meter when freed.

    It keeps a detached alias (same storage, no ``grad_fn``): holding a saved *output* itself
    would make a reference cycle through its own ``grad_fn`` that Python's GC cannot see, and
    a graph dropped without a backward pass would never be freed.
    """

    __slots__ = ("tensor", "key", "meter", "generation")

    def __init__(self, tensor: torch.Tensor, key: StorageKey, meter: SavedTensorMeter):
        self.tensor, self.key, self.meter = tensor, key, meter
        self.generation = meter.generation

    def __del__(self) -> None:
        self.meter._release(self.key, self.generation)


class SavedTensorMeter:
    """Context manager: bytes of the distinct storages saved for backward inside its block.

    Attributes (bytes):
        bytes: distinct storages still saved when the block ended (while inside: so far).
        peak_bytes: the most that were saved at once inside the block.
        n_saved: tensors saved (with repeats), a count.
    """

    def __init__(self) -> None:
        self._live: dict[StorageKey, list[int]] = {}  # key -> [nbytes, references]
        self._hooks: torch.autograd.graph.saved_tensors_hooks | None = None
        self._total = 0  # bytes of the storages in _live
        self._final: int | None = None
        self.generation = 0  # bumped on each entry: tensors saved in an earlier block are ignored
        self.peak_bytes = 0
        self.n_saved = 0

    @property
    def bytes(self) -> int:
        return self._final if self._final is not None else self._total

    def _pack(self, tensor: torch.Tensor) -> _Saved:
        storage = tensor.untyped_storage()
        key = (str(tensor.device), storage.data_ptr())
        entry = self._live.get(key)
        if entry is None:
            entry = self._live[key] = [storage.nbytes(), 0]
            self._total += entry[0]
            self.peak_bytes = max(self.peak_bytes, self._total)
        entry[1] += 1
        self.n_saved += 1
        return _Saved(tensor.detach(), key, self)

    @staticmethod
    def _unpack(saved: _Saved) -> torch.Tensor:
        return saved.tensor

    def _release(self, key: StorageKey, generation: int) -> None:
        entry = self._live.get(key)
        if entry is None or generation != self.generation:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._live[key]
            self._total -= entry[0]

    def __enter__(self) -> SavedTensorMeter:
        self._live.clear()
        self._total = 0
        self._final = None
        self.generation += 1
        self.peak_bytes = 0
        self.n_saved = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._hooks is not None
        self._hooks.__exit__(*exc)
        self._hooks = None
        self._final = self.bytes


def _proc_status_bytes(field: str) -> int | None:
    """``field`` ("VmRSS", "VmHWM") of ``/proc/self/status`` in bytes; ``None`` without /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
    except OSError:
        return None
    return None


def max_rss_bytes() -> int:
    """This process's peak resident set, bytes: ``VmHWM`` (since the last
    :func:`reset_peak_rss`) where ``/proc`` has it, else ``ru_maxrss`` (KiB on Linux; it
    includes the parent's high-water mark inherited through fork and exec)."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def rss_bytes() -> int:
    """This process's resident set now, bytes (``VmRSS``; the peak where /proc is missing)."""
    now = _proc_status_bytes("VmRSS")
    return now if now is not None else max_rss_bytes()


def reset_peak_rss() -> bool:
    """Reset the peak :func:`max_rss_bytes` reads to the current resident set (Linux >= 4.0:
    ``echo 5 > /proc/self/clear_refs``); ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return _proc_status_bytes("VmHWM") is not None


class CudaPeakMeter:
    """Context manager: the most CUDA memory allocated inside its block above what was
    allocated when it began (``peak_bytes``, bytes; ``torch.cuda.max_memory_allocated`` after
    ``reset_peak_memory_stats``). With ``device=None`` (a CPU run) it measures nothing and
    ``peak_bytes`` stays ``None``."""

    def __init__(self, device: str | torch.device | None):
        self.device = None if device is None else torch.device(device)
        self.peak_bytes: int | None = None
        self._start = 0

    def __enter__(self) -> CudaPeakMeter:
        if self.device is not None:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device is not None:
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._start


@dataclass
class RssMeasurement:
    """Peak resident set of one solve in a fresh process, bytes.

    Attributes:
        peak_bytes: the peak resident set of the forward (and backward) pass.
        baseline_bytes: the resident set after ``import torch``, the backend's imports and the
            problem's setup, before solving.
        nograd_bytes: the peak resident set of one forward solve without autograd (after the
            baseline, before the measured run); ``None`` when the probe did not report it.
        status: the solve's status in the probe ("ok", "max_steps", ...), as in a results row.
        message: the solve's error message, if any.
        peak_cuda_bytes: ``torch.cuda.max_memory_allocated()`` on a GPU run, else ``None`` (the
            RSS does not see GPU memory).
    """

    peak_bytes: int
    baseline_bytes: int
    status: str = "ok"
    message: str = ""
    peak_cuda_bytes: int | None = None
    nograd_bytes: int | None = None

    @property
    def increment_bytes(self) -> int:
        """What the solve added on top of the baseline, bytes."""
        return self.peak_bytes - self.baseline_bytes

    @property
    def nograd_increment_bytes(self) -> int | None:
        """What the no-grad solve added on top of the baseline, bytes."""
        return None if self.nograd_bytes is None else self.nograd_bytes - self.baseline_bytes


def peak_rss_subprocess(spec: dict[str, Any], timeout_s: float = 600.0) -> RssMeasurement:
    """Run ``python -m odebench.measure.rss_probe '<json spec>'`` and read its report.

    ``spec`` is the JSON form of a run (see :func:`odebench.measure.rss_probe.main`); the
    subprocess inherits this environment with ``MALLOC_ENV`` on top. Raises
    ``RuntimeError`` when the probe fails or prints no report, ``subprocess.TimeoutExpired``
    after ``timeout_s`` seconds.
    """
    command = [sys.executable, "-m", "odebench.measure.rss_probe", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False,
                          env={**os.environ, **MALLOC_ENV})
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"rss probe exited with {done.returncode}: {' | '.join(tail)}")
    report = json.loads(lines[-1])
    return RssMeasurement(peak_bytes=int(report["peak_bytes"]),
                          baseline_bytes=int(report["baseline_bytes"]),
                          status=str(report["status"]), message=str(report["message"]),
                          peak_cuda_bytes=report.get("peak_cuda_bytes"),
                          nograd_bytes=report.get("nograd_bytes"))

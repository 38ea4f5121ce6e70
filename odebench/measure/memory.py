"""Memory, measured: bytes autograd saves for backward, and the peak RSS of a fresh process.

``SavedTensorMeter`` counts, through ``torch.autograd.graph.saved_tensors_hooks``, the storages
of the tensors saved for backward while its block runs, each storage once (keyed by device and
data pointer: a parameter or an input saved by many operations counts once, and so do views of
one storage, at the storage's full size). A storage counts while some saved tensor still refers
to it, so graphs built and freed inside the block do not add up; ``bytes`` is what is still
saved when the block ends (what the backward pass will need), ``peak_bytes`` the most at any
moment. Memory a gradient method keeps outside autograd (``Stats.saved_bytes``) is not seen.

``peak_rss_subprocess`` runs one solve in a fresh Python (``python -m
odebench.measure.rss_probe``) and reads ``getrusage(RUSAGE_SELF).ru_maxrss`` there: once after
``import torch`` and the problem's setup (the baseline) and once after the solve.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch

StorageKey = tuple[str, int]


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


def max_rss_bytes() -> int:
    """This process's peak resident set so far, bytes (``ru_maxrss`` is KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


@dataclass
class RssMeasurement:
    """Peak resident set of one solve in a fresh process, bytes.

    Attributes:
        peak_bytes: ``ru_maxrss`` after the forward (and backward) pass.
        baseline_bytes: ``ru_maxrss`` after ``import torch``, the backend's imports and the
            problem's setup, before solving.
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

    @property
    def increment_bytes(self) -> int:
        """What the solve added on top of the baseline, bytes."""
        return self.peak_bytes - self.baseline_bytes


def peak_rss_subprocess(spec: dict[str, Any], timeout_s: float = 600.0) -> RssMeasurement:
    """Run ``python -m odebench.measure.rss_probe '<json spec>'`` and read its report.

    ``spec`` is the JSON form of a run (see :func:`odebench.measure.rss_probe.main`). Raises
    ``RuntimeError`` when the probe fails or prints no report, ``subprocess.TimeoutExpired``
    after ``timeout_s`` seconds.
    """
    command = [sys.executable, "-m", "odebench.measure.rss_probe", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"rss probe exited with {done.returncode}: {' | '.join(tail)}")
    report = json.loads(lines[-1])
    return RssMeasurement(peak_bytes=int(report["peak_bytes"]),
                          baseline_bytes=int(report["baseline_bytes"]),
                          status=str(report["status"]), message=str(report["message"]),
                          peak_cuda_bytes=report.get("peak_cuda_bytes"))

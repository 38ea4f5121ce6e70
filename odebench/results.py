"""The results store: one JSON line per run, one append-only file per study.

A run is a ``Row`` (a dataclass; ``COLUMNS`` lists its fields in order).
``ResultsStore(directory).append(row)`` writes it as one line of
``<directory>/<study>.jsonl`` with a single ``write`` call on a file opened in
append mode, then flushes and ``fsync``s. A process killed mid-write leaves at
most a truncated last line: reading ignores it and the next ``append`` cuts it
away first, so a file never holds a corrupt line followed by good ones.

``key_of(row)`` is the tuple of the run-defining columns (``KEY_COLUMNS``);
``store.has(key)`` lets a rerun skip the runs already recorded. Stopped runs
(``status`` other than ``"ok"``) are rows like any other: recorded, never missing.

One process appends to a study file at a time; an advisory ``flock`` guards the
repair-and-append step where the platform has one. Values are stored as JSON;
NaN and infinities are written as the non-standard ``NaN`` / ``Infinity`` that
Python's ``json`` reads back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.environment import environment, utc_timestamp
from odebench.errors import InvalidInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "COLUMNS",
    "KEY_COLUMNS",
    "STATUSES",
    "Key",
    "ResultsStore",
    "Row",
    "key_of",
]

#: The values ``Row.status`` may take.
STATUSES: tuple[str, ...] = ("ok", "max_steps", "nonfinite", "step_underflow", "timeout", "error")

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUFFIX = ".jsonl"


@dataclass(kw_only=True)
class Row:
    """One run. Keyword-only; ``None`` means "not measured / not applicable".

    Errors are relative L2 errors against the float64 truth (dimensionless),
    times are seconds, memory is bytes. The fields in ``KEY_COLUMNS`` define the
    run (``params`` holds any further run-defining setting, e.g. a step size or
    a checkpoint count); ``extra`` holds anything else measured (e.g. a model's
    final loss) and is not part of the key. numpy and torch scalars, arrays and
    dtypes are converted to plain Python on construction. The environment
    fields are filled in by ``ResultsStore.append`` (from
    ``odebench.environment``) when left ``None``.
    """

    # ---- what was run (all but the measurements below are part of the key)
    study: str
    problem: str
    backend: str
    method: str
    gradient: str | None = None  # None: forward solve only
    rtol: float | None = None  # None: fixed-step method
    atol: float | None = None
    dtype: str  # "float64", "float32" (a torch.dtype is accepted and converted)
    device: str  # "cpu", "cuda:0"
    # ---- what was measured
    sol_error: float | None = None  # relative L2 error of the solution, at the final time
    grad_error: float | None = None  # relative L2 error of the parameter gradient
    nfe_forward: int | None = None  # function evaluations in the forward solve
    nfe_backward: int | None = None  # function evaluations in the backward pass
    steps: int | None = None  # accepted steps
    rejected: int | None = None  # rejected steps
    wall_forward_s: float | None = None  # median wall clock of the forward solve, s
    wall_backward_s: float | None = None  # median wall clock of the backward pass, s
    saved_bytes: int | None = None  # bytes of tensors saved for backward
    peak_rss_bytes: int | None = None  # peak resident set of a fresh subprocess, bytes
    status: str = "ok"  # one of STATUSES
    message: str = ""  # the error message of a stopped run
    # ---- study-specific: run-defining (part of the key)
    T: float | None = None  # final time of the integration
    width: int | None = None  # hidden width of a neural vector field
    batch: int | None = None  # batch size
    state_dim: int | None = None  # dimension of the state
    model: str | None = None  # model name (study "models")
    seminorm: bool | None = None  # adjoint step control on the state only
    params: dict[str, Any] | None = None  # any other run-defining settings (JSON values)
    # ---- study-specific: measurements
    recon_error: float | None = None  # backsolve: relative error of the reconstructed y(t0)
    scd: float | None = None  # significant correct digits, -log10(relative error)
    sol_error_series: list[float] | None = None  # relative error at each output time
    n_jac: int | None = None  # Jacobian evaluations (implicit solvers)
    n_lu: int | None = None  # LU factorisations (implicit solvers)
    overhead_ratio: float | None = None  # wall / (NFE x one vector-field evaluation), 1 = no loop cost
    wall_per_nfe_s: float | None = None  # wall clock per function evaluation, s
    peer_method: str | None = None  # the method's name in the library that ran it ("dopri8")
    reanchor: bool | None = None  # adjoint resets its state to the forward one at output times
    n_repeats: int | None = None  # timed repeats behind wall_forward_s / wall_backward_s
    wall_forward_iqr_s: float | None = None  # interquartile range of the forward walls, s
    wall_backward_iqr_s: float | None = None  # interquartile range of the backward walls, s
    peak_rss_growth_bytes: int | None = None  # fresh-subprocess peak RSS above its import baseline
    peak_cuda_bytes: int | None = None  # CUDA: max_memory_allocated above the start of the run
    extra: dict[str, Any] = field(default_factory=dict)  # anything else (JSON values)
    # ---- environment (filled by ResultsStore.append when None)
    odebench_version: str | None = None
    torch_version: str | None = None
    scipy_version: str | None = None
    numpy_version: str | None = None
    torchdiffeq_version: str | None = None
    torchode_version: str | None = None
    commit: str | None = None  # short sha, "-dirty" appended if tracked files changed
    hostname: str | None = None
    cpu: str | None = None  # CPU model name
    cores: int | None = None  # logical CPUs
    ram_bytes: int | None = None  # physical memory, bytes
    os_name: str | None = None
    python: str | None = None  # Python version
    gpu: str | None = None  # CUDA device name, if any
    timestamp: str | None = None  # UTC, ISO 8601; filled at append time

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            setattr(self, spec.name, _plain(getattr(self, spec.name), spec.name))
        self.dtype = str(self.dtype).removeprefix("torch.")
        self.device = str(self.device)
        if not isinstance(self.study, str) or not _STUDY_NAME.match(self.study):
            raise InvalidInputError(
                f"study {self.study!r} must be letters, digits, '_', '.' or '-' (it names a file)"
            )
        if self.status not in STATUSES:
            raise InvalidInputError(f"status {self.status!r} is not one of {STATUSES}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Row:
        """A row from a mapping of column -> value; unknown columns raise ``InvalidInputError``."""
        unknown = sorted(set(values) - set(COLUMNS))
        if unknown:
            raise InvalidInputError(f"unknown row columns {unknown}; known columns are {COLUMNS}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Column -> value, in ``COLUMNS`` order."""
        return {name: getattr(self, name) for name in COLUMNS}

    def stamped(self) -> Row:
        """A copy whose unset environment fields and timestamp are those of this process, now."""
        fill = {name: value for name, value in environment().items() if getattr(self, name) is None}
        if self.timestamp is None:
            fill["timestamp"] = utc_timestamp()
        return dataclasses.replace(self, **fill)


#: Every column of a row, in order.
COLUMNS: tuple[str, ...] = tuple(spec.name for spec in dataclasses.fields(Row))

#: Columns that define a run; ``params`` enters the key as canonical JSON (sorted keys).
KEY_COLUMNS: tuple[str, ...] = (
    "study",
    "problem",
    "backend",
    "method",
    "gradient",
    "rtol",
    "atol",
    "dtype",
    "device",
    "T",
    "width",
    "batch",
    "state_dim",
    "model",
    "seminorm",
    "params",
)

#: A run's identity: the values of ``KEY_COLUMNS`` in order.
Key = tuple[Any, ...]


def _plain(value: Any, column: str) -> Any:
    """``value`` as plain JSON-able Python: numpy/torch scalars and arrays become numbers/lists."""
    if value is None:
        return None
    for kind in (bool, int, float, str):  # also np.float64 and other subclasses: plain again
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, column) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, column) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return _plain(value.tolist(), column)
    if value.__class__.__module__ == "torch" and value.__class__.__name__ in ("dtype", "device"):
        return str(value)
    raise InvalidInputError(f"column {column!r}: cannot store a {type(value).__name__}")


def _key_value(column: str, value: Any) -> Any:
    if column == "params":
        return None if value is None else json.dumps(value, sort_keys=True)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def key_of(row: Row | Mapping[str, Any]) -> Key:
    """The run-defining values of ``row``: ``KEY_COLUMNS`` in order, missing ones as ``None``.

    ``params`` (a dict) enters as its canonical JSON text so that the key is hashable.
    """
    values = row.to_dict() if isinstance(row, Row) else row
    return tuple(_key_value(name, values.get(name)) for name in KEY_COLUMNS)


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover - not on POSIX
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _repair(fd: int) -> int:
    """Cut a trailing partial line (no final newline) from the file open as ``fd``.

    Returns the number of bytes removed.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - 4096)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        end = start
    os.ftruncate(fd, end)
    os.fsync(fd)
    return size - end


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The rows of one study file; a truncated last line is ignored, other bad lines raise."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last piece is empty, or a line cut short by a kill
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: corrupt results line: {exc}") from exc
    return records


class ResultsStore:
    """Append-only results rows under ``directory``, one ``<study>.jsonl`` per study."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self._keys: dict[str, tuple[int, set[Key]]] = {}  # study -> (file size read, keys)

    def path(self, study: str) -> Path:
        """The file holding the rows of ``study``."""
        if not _STUDY_NAME.match(study):
            raise InvalidInputError(f"study {study!r} is not a valid study name")
        return self.directory / f"{study}{_SUFFIX}"

    def studies(self) -> list[str]:
        """Names of the studies that have a file, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name[: -len(_SUFFIX)] for p in self.directory.glob(f"*{_SUFFIX}"))

    def append(self, row: Row | Mapping[str, Any]) -> Row:
        """Record one run and return it as written (environment and timestamp filled in).

        The line reaches the disk (flush + fsync) before this returns.
        """
        if not isinstance(row, Row):
            row = Row.from_dict(row)
        row = row.stamped()
        line = (json.dumps(row.to_dict(), separators=(",", ":")) + "\n").encode("utf-8")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(row.study)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            with _locked(fd):
                _repair(fd)
                before = os.fstat(fd).st_size
                written = os.write(fd, line)
                while written < len(line):  # a short write of a regular file is rare
                    written += os.write(fd, line[written:])
                os.fsync(fd)
        finally:
            os.close(fd)
        cached = self._keys.get(row.study)
        if cached is not None and cached[0] == before:
            cached[1].add(key_of(row))
            self._keys[row.study] = (before + len(line), cached[1])
        return row

    def _known(self, study: str) -> set[Key]:
        """Keys recorded for ``study``, re-read when the file changed size since last read."""
        path = self.path(study)
        size = path.stat().st_size if path.exists() else 0
        cached = self._keys.get(study)
        if cached is None or cached[0] != size:
            keys = {key_of(record) for record in self._records(study)}
            cached = (size, keys)
            self._keys[study] = cached
        return cached[1]

    def has(self, key: Key) -> bool:
        """Whether a run with this ``key_of`` is recorded (whatever its status)."""
        return key in self._known(key[0])

    def _records(self, study: str) -> list[dict[str, Any]]:
        path = self.path(study)
        return _read_lines(path) if path.exists() else []

    def records(self, study: str | None = None) -> Iterator[dict[str, Any]]:
        """Raw rows (dicts) of one study, or of all studies in name order."""
        for name in [study] if study is not None else self.studies():
            yield from self._records(name)

    def rows(self, study: str | None = None) -> pd.DataFrame:
        """The rows of one study, or of all, as a DataFrame: ``COLUMNS`` first, then any others.

        Missing values are ``None``/NaN; ``params``, ``extra`` and ``sol_error_series``
        hold dicts and lists.
        """
        records = list(self.records(study))
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        others = [c for c in frame.columns if c not in COLUMNS]
        return frame.reindex(columns=[*COLUMNS, *others])

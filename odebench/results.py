"""The results store: one JSON line per run, one append-only file per study.

A run is a ``Row`` (a dataclass; ``COLUMNS`` lists its fields in order).
``ResultsStore(directory).append(row)`` writes it as one line of
``<directory>/<study>.jsonl`` with a single ``write`` call on a file opened in
append mode, then flushes and ``fsync``s. A process killed mid-write leaves at
most a truncated last line: reading ignores it and the next ``append`` cuts it
away first, so a file never holds a corrupt line followed by good ones.

``key_of(row)`` is the tuple of the run-defining columns (``KEY_COLUMNS``): what
was run, the grid ``mode`` and torch ``threads`` it was measured under, and the
``commit`` that measured it, so a rerun at the same commit resumes while another
commit (or a full run after a quick one) measures again. ``store.recorded(study)``
lets a rerun skip the runs already recorded (``error`` rows are retried unless
asked not to). Stopped runs (``status`` other than ``"ok"``) are rows like any
other: recorded, never missing.

``store.lock(study)`` holds a study for a whole run: a second run on the same
store waits, with a message, until the first is done. An advisory ``flock``
guards each repair-and-append step where the platform has one. ``rows()`` keeps
the last-written row of each run (a duplicate, a retried ``error`` row or an
older commit's measurement is dropped, with a warning that counts them).

A complete line that is not a row (corrupt JSON, or JSON that is not a row) is
an error naming the file and line; ``store.repair()`` moves such lines to
``<study>.jsonl.bad``. Values are stored as JSON; NaN and infinities are written
as the non-standard ``NaN`` / ``Infinity`` that Python's ``json`` reads back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator, Mapping
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
    "CorruptStoreError",
    "KEY_COLUMNS",
    "RUN_COLUMNS",
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
_BAD_SUFFIX = ".jsonl.bad"
_LOCK_SUFFIX = ".jsonl.lock"


class CorruptStoreError(InvalidInputError):
    """A results file holds a complete line that is not a row (names the file and line)."""


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
    mode: str | None = None  # the grid it belongs to: "quick" or "full" (sets repeats, RSS, ...)
    threads: int | None = None  # torch intra-op threads it was measured with
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
    timing_exclusive: bool | None = None  # no other odebench run shared its machine while timed
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
    "mode",
    "threads",
    "commit",
)

#: The key columns that name a measurement regardless of the code that made it (no ``commit``).
RUN_COLUMNS: tuple[str, ...] = tuple(name for name in KEY_COLUMNS if name != "commit")

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


def _not_a_row(record: Any, study: str) -> str | None:
    """Why a parsed line is not a row of ``study`` (``None`` if it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a row object"
    try:
        row = Row.from_dict(record)
    except (InvalidInputError, TypeError) as exc:
        return f"not a row: {exc}"
    if row.study != study:
        return f"a row of study {row.study!r} in the file of study {study!r}"
    return None


@dataclass
class _Scan:
    """One study file read line by line: the rows, the bad complete lines, a cut-off tail."""

    records: list[dict[str, Any]]
    bad: list[tuple[int, bytes, str]]  # (line number from 1, the line, why it is not a row)
    tail: bytes  # a last line without its newline (a run killed mid-write), or b""


def _scan(path: Path, study: str) -> _Scan:
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")
    records, bad = [], []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            bad.append((number, line, f"corrupt JSON ({exc})"))
            continue
        reason = _not_a_row(record, study)
        if reason is None:
            records.append(record)
        else:
            bad.append((number, line, reason))
    return _Scan(records, bad, tail)


def _read_lines(path: Path, study: str) -> list[dict[str, Any]]:
    """The rows of one study file; a truncated last line is skipped with a warning, any other
    bad line raises :class:`CorruptStoreError` naming the file and line."""
    scan = _scan(path, study)
    if scan.bad:
        number, _, reason = scan.bad[0]
        more = f" (and {len(scan.bad) - 1} more bad lines)" if len(scan.bad) > 1 else ""
        raise CorruptStoreError(
            f"{path}:{number}: corrupt results line: {reason}{more}; "
            f"`odebench report --repair` moves bad lines to {path.name[:-len(_SUFFIX)]}{_BAD_SUFFIX}")
    if scan.tail.strip():
        warnings.warn(f"{path}: skipped a truncated last line ({len(scan.tail)} bytes, a run "
                      "killed mid-write); the next append removes it", stacklevel=4)
    return scan.records


def _dedupe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last-written record of each run (``RUN_COLUMNS``), in file order; warns what it drops."""
    last: dict[Key, int] = {}
    for index, record in enumerate(records):
        last[_run_of(record)] = index
    if len(last) == len(records):
        return records
    kept = sorted(last.values())
    dropped = [records[i] for i in sorted(set(range(len(records))) - set(kept))]
    keeper = {run: records[i] for run, i in last.items()}
    kinds = {"duplicate": 0, "retried error": 0, "older commit": 0}
    for record in dropped:
        newer = keeper[_run_of(record)]
        if newer.get("commit") != record.get("commit"):
            kinds["older commit"] += 1
        elif record.get("status") == "error":
            kinds["retried error"] += 1
        else:
            kinds["duplicate"] += 1
    counts = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
    warnings.warn(f"results: kept the last row of each run and dropped {len(dropped)} ({counts})",
                  stacklevel=3)
    return [records[i] for i in kept]


def _run_of(record: Mapping[str, Any]) -> Key:
    return tuple(_key_value(name, record.get(name)) for name in RUN_COLUMNS)


def _held_by(handle: Any) -> str:
    handle.seek(0)
    return handle.read().strip() or "another process"


class ResultsStore:
    """Append-only results rows under ``directory``, one ``<study>.jsonl`` per study."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        # study -> (file size read, key -> status of its last row)
        self._keys: dict[str, tuple[int, dict[Key, str]]] = {}

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

    @contextmanager
    def lock(self, study: str, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold ``study`` for a whole run: another process's ``lock`` on it waits until this
        one ends. ``waiting(message)`` is called once if this call has to wait."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{study}{_LOCK_SUFFIX}"
        self.path(study)  # validates the name
        with open(path, "a+") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if waiting is not None:
                        waiting(f"{self.path(study)} is being written by another odebench run "
                                f"({_held_by(handle)}); waiting for it to finish")
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

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
            cached[1][key_of(row)] = row.status
            self._keys[row.study] = (before + len(line), cached[1])
        return row

    def _known(self, study: str) -> dict[Key, str]:
        """Key -> status of its last row for ``study``, re-read when the file changed size."""
        path = self.path(study)
        size = path.stat().st_size if path.exists() else 0
        cached = self._keys.get(study)
        if cached is None or cached[0] != size:
            cached = (size, {key_of(record): record.get("status") for record in self._records(study)})
            self._keys[study] = cached
        return cached[1]

    def has(self, key: Key) -> bool:
        """Whether a run with this ``key_of`` is recorded (whatever its status)."""
        return key in self._known(key[0])

    def recorded(self, study: str, retry: tuple[str, ...] = ("error",)) -> set[Key]:
        """Keys of ``study`` a rerun skips: recorded, with a last row whose status is not in
        ``retry`` (by default a crashed run is run again; ``retry=()`` keeps every row)."""
        return {key for key, status in self._known(study).items() if status not in retry}

    def repair(self, study: str) -> int:
        """Move the bad lines of ``study``'s file (corrupt JSON, JSON that is not a row, a
        truncated last line) to ``<study>.jsonl.bad``; returns how many were moved."""
        path = self.path(study)
        if not path.exists():
            return 0
        fd = os.open(path, os.O_RDWR)
        try:
            with _locked(fd):
                scan = _scan(path, study)
                moved = [line for _, line, _ in scan.bad] + ([scan.tail] if scan.tail.strip() else [])
                if not moved:
                    return 0
                with open(self.directory / f"{study}{_BAD_SUFFIX}", "ab") as bad:
                    bad.write(b"".join(line + b"\n" for line in moved))
                    bad.flush()
                    os.fsync(bad.fileno())
                good = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n"
                                for r in scan.records)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(good)
                os.replace(tmp, path)
        finally:
            os.close(fd)
        self._keys.pop(study, None)
        return len(moved)

    def _records(self, study: str) -> list[dict[str, Any]]:
        path = self.path(study)
        return _read_lines(path, study) if path.exists() else []

    def records(self, study: str | None = None) -> Iterator[dict[str, Any]]:
        """Raw rows (dicts) of one study, or of all studies in name order, as written."""
        for name in [study] if study is not None else self.studies():
            yield from self._records(name)

    def rows(self, study: str | None = None) -> pd.DataFrame:
        """The rows of one study, or of all, as a DataFrame: ``COLUMNS`` first, then any others.

        Only the last-written row of each run (``RUN_COLUMNS``) is kept; a warning counts the
        rows dropped. Missing values are ``None``/NaN; ``params``, ``extra`` and
        ``sol_error_series`` hold dicts and lists.
        """
        records = []
        for name in [study] if study is not None else self.studies():
            records += _dedupe(self._records(name))
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        others = [c for c in frame.columns if c not in COLUMNS]
        return frame.reindex(columns=[*COLUMNS, *others])

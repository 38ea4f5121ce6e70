"""Where and with what a run was made: package versions, git commit, machine.

``environment()`` collects the facts once per process (they do not change while
it runs) and returns a fresh copy of a flat dict whose keys are exactly
``ENVIRONMENT_COLUMNS``, so that a results row can carry them as columns.
The time of a run is not part of it: ``utc_timestamp()`` gives that per row.

``Provenance.from_rows(frame)`` summarises those columns over a set of rows,
which is what a table or a figure built from the rows prints as its origin.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "ENVIRONMENT_COLUMNS",
    "PACKAGES",
    "Provenance",
    "environment",
    "git_commit",
    "utc_timestamp",
]

#: Distributions whose versions are recorded, as ``<name>_version`` columns.
PACKAGES: tuple[str, ...] = ("odebench", "torch", "scipy", "numpy", "torchdiffeq", "torchode")

#: Keys of ``environment()``, in order.
ENVIRONMENT_COLUMNS: tuple[str, ...] = (
    *(f"{name}_version" for name in PACKAGES),
    "commit",
    "hostname",
    "cpu",
    "cores",
    "ram_bytes",
    "os_name",
    "python",
    "gpu",
)

#: Seconds any one git call may take before it is given up.
GIT_TIMEOUT_S = 5.0

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def utc_timestamp() -> str:
    """The current time in UTC, ISO 8601 to the second, e.g. ``2025-01-31T12:00:00+00:00``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _source_version() -> str | None:
    """The version in the source checkout's pyproject.toml (needs Python >= 3.11's tomllib)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return None
    try:
        with open(_SOURCE_ROOT / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None


def _version(name: str) -> str | None:
    """Installed version of distribution ``name``; for odebench also a source checkout's."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        version = getattr(sys.modules.get(name), "__version__", None)
        if version is not None:
            return str(version)
        return _source_version() if name == "odebench" else None


def _git(*args: str, cwd: Path) -> str | None:
    """Stdout of ``git args`` in ``cwd``, stripped; ``None`` if git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(directory: Path = _SOURCE_ROOT) -> str | None:
    """Short sha of HEAD in ``directory``, with ``-dirty`` appended when tracked files changed
    outside ``reports/`` (the results and reports a run writes do not change the code measured).

    ``None`` when ``directory`` is not in a git work tree, the tree has no commit
    yet, or git is not installed.
    """
    sha = _git("rev-parse", "--short", "HEAD", cwd=directory)
    if not sha:
        return None
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                   ":(exclude)reports", cwd=directory)
    return f"{sha}-dirty" if changes else sha


def _cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The CPU's model name from ``cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Physical memory in bytes: ``MemTotal`` of ``meminfo`` (Linux), else
    ``sysconf(SC_PHYS_PAGES) x sysconf(SC_PAGE_SIZE)`` (other POSIX); ``None`` if neither."""
    try:
        with open(meminfo, encoding="utf-8", errors="replace") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    value, *unit = line.split(":", 1)[1].split()
                    return int(value) * (1024 if unit and unit[0].lower() == "kb" else 1)
    except (OSError, ValueError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _gpu_name() -> str | None:
    """Name of CUDA device 0 when torch is already imported and sees one; torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


@functools.cache
def _collect() -> tuple[tuple[str, Any], ...]:
    facts: dict[str, Any] = {f"{name}_version": _version(name) for name in PACKAGES}
    facts.update(
        commit=git_commit(),
        hostname=platform.node() or None,
        cpu=_cpu_model(),
        cores=os.cpu_count(),
        ram_bytes=_ram_bytes(),
        os_name=platform.platform(),
        python=platform.python_version(),
        gpu=_gpu_name(),
    )
    return tuple(facts.items())


def environment() -> dict[str, Any]:
    """Package versions, git commit, machine and Python of this process (cached per process).

    Keys are ``ENVIRONMENT_COLUMNS``: ``<package>_version`` for each of ``PACKAGES``
    (``None`` if not installed), ``commit`` (see ``git_commit``), ``hostname``,
    ``cpu`` (model name), ``cores`` (logical CPUs), ``ram_bytes`` (physical memory),
    ``os_name``, ``python`` (version) and ``gpu`` (CUDA device 0's name, ``None`` without
    one).
    """
    return dict(_collect())


def _distinct(values: Iterable[Any]) -> str:
    """The distinct non-missing values, in first-seen order, joined by ", "; "n/a" if none."""
    seen: dict[str, None] = {}
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            continue
        seen.setdefault(str(value), None)
    return ", ".join(seen) or "n/a"


def _gib(value: Any) -> str | None:
    """Bytes as GiB text, e.g. ``"7.8 GiB RAM"``; ``None`` when missing."""
    if not isinstance(value, (int, float)) or value != value or value <= 0:
        return None
    return f"{value / 2**30:.1f} GiB RAM"


def _threads(params: Any, extra: Any) -> str | None:
    """``torch threads N`` where a row's params or extra record the timing threads."""
    for record in (params, extra):
        if isinstance(record, dict) and record.get("threads") is not None:
            return f"torch threads {record['threads']}"
    return None


@dataclass(frozen=True)
class Provenance:
    """Where a set of rows came from, as text: each field lists the distinct values seen.

    ``machine`` is ``host (CPU model, cores, RAM, torch threads, OS)`` with the parts the rows
    record; ``times`` the first and last row's UTC time, to the minute.
    """

    torch: str
    scipy: str
    torchdiffeq: str
    odebench: str
    commit: str
    machine: str
    date: str
    rows: int
    numpy: str = "n/a"
    torchode: str = "n/a"
    python: str = "n/a"
    times: str = "n/a"

    @classmethod
    def from_rows(cls, frame: Any) -> Provenance:
        """Summarise the environment columns of ``frame`` (a pandas DataFrame of results rows)."""

        def column(name: str) -> list[Any]:
            return list(frame[name]) if name in frame.columns else [None] * len(frame)

        machines = [
            f"{host} ({', '.join(str(part) for part in parts if part is not None)})"
            for host, *parts in zip(
                column("hostname"),
                column("cpu"),
                [f"{n} cores" if n is not None and n == n else None for n in column("cores")],
                [_gib(v) for v in column("ram_bytes")],
                [_threads(p, e) for p, e in zip(column("params"), column("extra"), strict=True)],
                column("os_name"),
                strict=True,
            )
        ]
        stamps = sorted(str(stamp) for stamp in column("timestamp") if isinstance(stamp, str))
        date, times = "n/a", "n/a"
        if stamps:
            dates = [stamp[:10] for stamp in stamps]
            date = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
            first, last = (stamp[:16].replace("T", " ") for stamp in (stamps[0], stamps[-1]))
            times = first if first == last else f"{first} to {last}"
        return cls(
            torch=_distinct(column("torch_version")),
            scipy=_distinct(column("scipy_version")),
            torchdiffeq=_distinct(column("torchdiffeq_version")),
            odebench=_distinct(column("odebench_version")),
            commit=_distinct(column("commit")),
            machine=_distinct(machines),
            date=date,
            rows=len(frame),
            numpy=_distinct(column("numpy_version")),
            torchode=_distinct(column("torchode_version")),
            python=_distinct(column("python")),
            times=times,
        )

    def items(self) -> list[tuple[str, str]]:
        """(label, text) pairs in display order."""
        return [
            ("torch", self.torch),
            ("scipy", self.scipy),
            ("numpy", self.numpy),
            ("torchdiffeq", self.torchdiffeq),
            ("torchode", self.torchode),
            ("python", self.python),
            ("odebench", self.odebench),
            ("commit", self.commit),
            ("machine", self.machine),
            ("date (UTC)", self.date),
            ("rows", str(self.rows)),
        ]

    def line(self) -> str:
        """All of it on one line, e.g. for a caption."""
        return "; ".join(f"{label} {text}" for label, text in self.items())

    def footer(self) -> str:
        """The short form a figure carries: commit, machine and date."""
        return f"commit {self.commit} | {self.machine} | {self.date} | torch {self.torch}"

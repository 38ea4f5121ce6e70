"""On-disk cache of reference results: one ``.npz`` per key, written atomically.

The directory is ``$ODEBENCH_CACHE`` or ``~/.cache/odebench``. A file is trusted only if it
loads, carries the expected key and its arrays hash to the stored digest; anything else is
treated as missing (and then overwritten). ``exclusive(kind, name, key)`` holds an entry's
``fcntl`` lock while one process computes it, so that two processes (two dask workers, say)
never compute or write the same entry at once: the second waits, then loads. Files get the
permissions the umask allows (a shared cache folder is group-readable).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

from odebench.problems.base import Problem

# Bump when an algorithm or a default changes, so stale files are no longer hit.
CACHE_VERSION = "1"
ENV_VAR = "ODEBENCH_CACHE"


def cache_dir() -> Path:
    """``$ODEBENCH_CACHE`` if set, else ``~/.cache/odebench``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path.home() / ".cache" / "odebench"


def _tensor_bytes(x: torch.Tensor) -> bytes:
    return x.detach().to(dtype=torch.float64, device="cpu").contiguous().numpy().tobytes()


def _rhs_fingerprint(problem: Problem) -> bytes:
    """The right-hand side evaluated at ``y0`` and at a fixed perturbation of it (bytes).

    Catches a changed ``rhs`` under an unchanged name, ``y0``, ``p`` and ``t_eval``.
    """
    y0 = problem.y0.detach().to(dtype=torch.float64, device="cpu")
    p = problem.p.detach().to(dtype=torch.float64, device="cpu")
    gen = torch.Generator().manual_seed(20240101)
    bump = (0.5 + torch.rand(y0.shape, generator=gen, dtype=torch.float64)) * 1e-2
    t0, t1 = problem.t_eval[0], problem.t_eval[-1]
    with torch.no_grad():
        f0 = problem.rhs(t0.to(torch.float64), y0, p)
        f1 = problem.rhs(t1.to(torch.float64), y0 + bump * (1.0 + y0.abs()), p)
    return _tensor_bytes(f0) + _tensor_bytes(f1)


def make_key(kind: str, problem: Problem, settings: dict, extra: bytes = b"") -> str:
    """SHA-256 hex of (kind, name, y0, p, t_eval, rhs fingerprint, settings, version, extra)."""
    h = hashlib.sha256()
    header = {"kind": kind, "name": problem.name, "version": CACHE_VERSION, "settings": settings,
              "y0_shape": list(problem.y0.shape)}
    h.update(json.dumps(header, sort_keys=True).encode())
    for part in (problem.y0, problem.p, problem.t_eval):
        h.update(_tensor_bytes(part))
    h.update(_rhs_fingerprint(problem))
    h.update(extra)
    return h.hexdigest()


def _path(kind: str, name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return cache_dir() / f"{kind}-{safe}-{key[:40]}.npz"


@contextmanager
def exclusive(kind: str, name: str, key: str) -> Iterator[None]:
    """Hold the lock of one cache entry (``<entry>.lock``, removed after) for the block; waits
    while another process holds it. Without a writable cache folder (or ``fcntl``) the block
    runs unlocked."""
    path = _path(kind, name, key).with_suffix(".lock")
    fd = _lock_file(path) if fcntl is not None else None
    try:
        yield
    finally:
        if fd is not None:
            path.unlink(missing_ok=True)  # while held: a waiter finds it gone and starts over
            os.close(fd)


def _lock_file(path: Path) -> int | None:
    """A descriptor of ``path`` holding its exclusive ``flock``, or None if it cannot be made."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file we waited on: lock the current one


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def load(kind: str, name: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key``, or None if missing, unreadable or not intact."""
    path = _path(kind, name, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        stored_key = str(arrays.pop("__key__"))
        stored_digest = str(arrays.pop("__digest__"))
    except Exception:  # any failure to read means "not cached"
        return None
    if stored_key != key or stored_digest != _digest(arrays):
        return None
    return arrays


def _umask() -> int:
    """This process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def save(kind: str, name: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` under ``key``: write a temporary file, fsync, then ``os.replace``.

    A cache that cannot be written (read-only or full disk) only warns: the result stands.
    """
    path = _path(kind, name, key)
    payload = dict(arrays, __key__=np.array(key), __digest__=np.array(_digest(arrays)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as exc:
        warnings.warn(f"odebench cache not written ({path.parent}): {exc}", stacklevel=3)
        return
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a shared cache is group-readable
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"odebench cache not written ({path}): {exc}", stacklevel=3)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

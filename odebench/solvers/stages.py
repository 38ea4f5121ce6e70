"""Where a Runge-Kutta step keeps its stages, and the combinations read from them.

A step evaluates stages ``k_1..k_s`` (flat, [N] each) and forms combinations
``y + h * sum_j a_j k_j`` from a stage matrix. Two stores, one interface:

* :class:`StackedStages` keeps a Python list and stacks it for each combination. Every operation
  is out-of-place, so autograd can record the step (the ``backprop`` gradient), and the list
  outlives the step (observers keep it).
* :class:`BufferedStages` copies each stage into a preallocated matrix [S, N], allocated once per
  solve: no stacking and no per-step allocation of the matrix. Only for solves that record no
  graph and keep no stages (forward inference, benchmarks, the adjoints' backward passes).
"""

from __future__ import annotations

import torch

from odebench.solvers.func import FlatField


def _head(mat: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of ``mat`` (the entries a seminorm measures); ``mat`` itself when it
    has no more."""
    return mat if n == mat.shape[0] else mat[:n]


class StackedStages:
    """Stages as a list of flat tensors [N]; a stage matrix [N, j] is a ``torch.stack``.

    The last stacked matrix is remembered, so that the error estimate of an FSAL step reuses the
    one its last stage combination built.
    """

    def __init__(self, f: FlatField, ks: list[torch.Tensor] | None = None):
        self.f = f
        self.ks: list[torch.Tensor] = list(ks) if ks is not None else []
        self._mat: torch.Tensor | None = None

    def start(self, k0: torch.Tensor) -> torch.Tensor:
        """Begin a step whose first stage is ``k0`` [N]; returns the first stage."""
        self.ks, self._mat = [k0], None
        return k0

    def push(self, t: float, t_tensor: torch.Tensor, y: torch.Tensor) -> None:
        """Evaluate the next stage at (``t``, flat ``y``)."""
        self.ks.append(self.f.at(t, t_tensor, y))

    def k(self, i: int) -> torch.Tensor:
        """Stage ``i`` (0-based), flat [N]."""
        return self.ks[i]

    def combine(self, y: torch.Tensor, a: torch.Tensor, h: float) -> torch.Tensor:
        """``y + h * sum_j a[j] k_j`` over the first ``len(a)`` stages, flat [N]. The stacked
        matrix is remembered (combinations run where the step's graph is recorded)."""
        j = a.shape[0]
        if self._mat is None or self._mat.shape[1] != j:
            self._mat = torch.stack(self.ks[:j], 1)
        return torch.addmv(y, self._mat, a, alpha=h)

    def _read(self, j: int) -> torch.Tensor:
        """The first ``j`` stages as columns [N, j]: the remembered matrix when it has ``j``
        columns, else a fresh stack that is not remembered (the error estimate runs without
        autograd, and its stack must not stand in for a recorded one)."""
        if self._mat is not None and self._mat.shape[1] == j:
            return self._mat
        return torch.stack(self.ks[:j], 1)

    def error(self, e: torch.Tensor, e_head: torch.Tensor, e_last: float,
              n: int) -> torch.Tensor:
        """``sum_j e[j] k_j`` over the first ``len(e)`` stages, in the first ``n`` entries only
        (seminorms), shape [n]. After an FSAL step the last stage was never stacked: ``e_head``
        (all but the last weight) and ``e_last`` add it to the remembered matrix instead of
        stacking again."""
        s = e.shape[0]
        if self._mat is not None and self._mat.shape[1] == s - 1:
            return torch.addmv(_head(self.ks[s - 1], n), _head(self._mat, n), e_head, beta=e_last)
        return torch.mv(_head(self._read(s), n), e)

    def mm(self, weights: torch.Tensor, n: int) -> torch.Tensor:
        """``K @ weights`` over the first ``weights.shape[0]`` stages, in the first ``n``
        entries, shape [n, m]."""
        return torch.mm(_head(self._read(weights.shape[0]), n), weights)

    def dense(self, y: torch.Tensor, w: torch.Tensor, h: float) -> torch.Tensor:
        """``y + h * w @ K``: the dense-output states for weights ``w`` [m, j], shape [m, N]."""
        return torch.addmm(y, w, torch.stack(self.ks[: w.shape[1]]), alpha=h)

    def stages(self) -> list[torch.Tensor]:
        """All stages of the step so far (a list the store will not touch again; observers keep
        it)."""
        return self.ks


class BufferedStages:
    """Stages as the rows of one matrix ``K`` [S, N] allocated per solve.

    Each stage is copied into its row straight from the vector field's output (no reshape), and
    every combination reads a prefix view of ``K`` (made once per prefix length, per solve).
    Every view reads only rows the current step has written. Rows are overwritten by the next
    step (:meth:`k` views are valid until then), so this store hands no stages to observers.

    Args:
        f: the flat vector field.
        rows: S, the most stages a step evaluates (dense-output stages included).
        like: a flat tensor [N] of the state's dtype and device.
    """

    def __init__(self, f: FlatField, rows: int, like: torch.Tensor):
        self.f = f
        self.K = torch.empty(rows, like.numel(), dtype=like.dtype, device=like.device)
        self.flat = self.K.unbind(0)
        self.shaped = self.flat if len(f.shape) == 1 else self.K.view(rows, *f.shape).unbind(0)
        # prefix views by length, made on first use: columns [N, j] and rows K[:j] [j, N]
        self._cols: list[torch.Tensor | None] = [None] * (rows + 1)
        self._rows: list[torch.Tensor | None] = [None] * (rows + 1)
        self.n = 1

    def start(self, k0: torch.Tensor) -> torch.Tensor:
        """Begin a step whose first stage is ``k0`` [N] (copied into row 0 unless it is row 0);
        returns row 0, which stays the first stage while steps are retried."""
        if k0 is not self.flat[0]:
            self.flat[0].copy_(k0)
        self.n = 1
        return self.flat[0]

    def push(self, t: float, t_tensor: torch.Tensor, y: torch.Tensor) -> None:
        """Evaluate the next stage at (``t``, flat ``y``) into its row, after the checks a
        ``torch.stack`` would make: ``copy_`` alone would broadcast a wrong shape or cast a wrong
        dtype silently."""
        out = self.f.raw(t, t_tensor, y)
        if not isinstance(out, torch.Tensor) or out.shape != self.f.shape \
                or out.dtype != self.K.dtype:
            self.f.check_layout(out)
        self.shaped[self.n].copy_(out)
        self.n += 1

    def k(self, i: int) -> torch.Tensor:
        """Stage ``i`` (0-based), a flat view [N] of its row."""
        return self.flat[i]

    def matrix(self, j: int) -> torch.Tensor:
        """The first ``j`` rows as the columns of a matrix [N, j] (a view: one ``as_strided``)."""
        cols = self._cols[j]
        if cols is None:
            n = self.K.shape[1]
            cols = self._cols[j] = self.K.as_strided((n, j), (1, n))
        return cols

    def combine(self, y: torch.Tensor, a: torch.Tensor, h: float) -> torch.Tensor:
        """``y + h * sum_j a[j] k_j`` over the first ``len(a)`` stages, flat [N]."""
        return torch.addmv(y, self.matrix(a.shape[0]), a, alpha=h)

    def error(self, e: torch.Tensor, e_head: torch.Tensor, e_last: float,
              n: int) -> torch.Tensor:
        """``sum_j e[j] k_j`` over the first ``len(e)`` stages, in the first ``n`` entries only
        (seminorms), shape [n]."""
        return torch.mv(_head(self.matrix(e.shape[0]), n), e)

    def mm(self, weights: torch.Tensor, n: int) -> torch.Tensor:
        """``K @ weights`` over the first ``weights.shape[0]`` stages, in the first ``n``
        entries, shape [n, m]."""
        return torch.mm(_head(self.matrix(weights.shape[0]), n), weights)

    def dense(self, y: torch.Tensor, w: torch.Tensor, h: float) -> torch.Tensor:
        """``y + h * w @ K``: the dense-output states for weights ``w`` [m, j], shape [m, N]."""
        j = w.shape[1]
        rows = self._rows[j]
        if rows is None:
            rows = self._rows[j] = self.K[:j]
        return torch.addmm(y, w, rows, alpha=h)

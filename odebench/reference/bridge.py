"""NumPy views of a problem's torch right-hand side, for SciPy: f, Jacobians and VJPs.

Everything is evaluated in torch float64 on the CPU; states are flat numpy vectors of length
``n = y0.numel()`` and parameters have length ``m = p.numel()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.func import jacrev

from odebench.problems.base import Problem


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the previous count.

    The reference evaluates tiny tensors thousands of times; a second thread only adds
    synchronisation (batched matmuls under ``vmap`` were 8x slower with two threads).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchSystem:
    """The problem's ``rhs`` with ``p`` fixed, on flat float64 numpy states."""

    def __init__(self, problem: Problem):
        self.rhs = problem.rhs
        self.shape = tuple(problem.y0.shape)
        self.p = problem.p.detach().to(dtype=torch.float64, device="cpu")
        self.n = int(problem.y0.numel())
        self.m = int(self.p.numel())

    def _flat_rhs(self, t: Tensor, y_flat: Tensor, p: Tensor) -> Tensor:
        return self.rhs(t, y_flat.reshape(self.shape), p).reshape(-1)

    @staticmethod
    def _t(t: float) -> Tensor:
        return torch.from_numpy(np.array(t, dtype=np.float64))

    @staticmethod
    def _y(y: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))

    def f(self, t: float, y: np.ndarray) -> np.ndarray:
        """dy/dt, shape ``[n]``. No input requires grad, so no graph is recorded."""
        return self._flat_rhs(self._t(t), self._y(y), self.p).numpy()

    def jac(self, t: float, y: np.ndarray) -> np.ndarray:
        """df/dy, shape ``[n, n]``, by ``torch.func.jacrev``."""
        tt = self._t(t)
        return jacrev(lambda yy: self._flat_rhs(tt, yy, self.p))(self._y(y)).numpy()

    def f_and_jacobians(self, t: float, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(f [n], df/dy [n, n], df/dp [n, m])`` by one ``torch.func.jacrev``."""
        tt = self._t(t)

        def with_aux(yy: Tensor, pp: Tensor) -> tuple[Tensor, Tensor]:
            out = self._flat_rhs(tt, yy, pp)
            return out, out

        (j_y, j_p), f = jacrev(with_aux, argnums=(0, 1), has_aux=True)(self._y(y), self.p)
        return f.numpy(), j_y.numpy(), j_p.numpy()

    def vjp(self, t: float, y: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a^T df/dy [n], a^T df/dp [m])`` by ``torch.autograd``."""
        yy = self._y(y).clone().requires_grad_(True)
        pp = self.p.clone().requires_grad_(True)
        with torch.enable_grad():
            out = self._flat_rhs(self._t(t), yy, pp)
            g_y, g_p = torch.autograd.grad(out, (yy, pp), self._y(a), allow_unused=True)
        return _numpy_or_zeros(g_y, self.n), _numpy_or_zeros(g_p, self.m)


def _numpy_or_zeros(g: Tensor | None, size: int) -> np.ndarray:
    return np.zeros(size) if g is None else g.detach().numpy()

"""The records a solve returns: statistics, the solution, and the partial solution of a failed run."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Stats:
    """Counters of one solve.

    Attributes:
        nfe: vector-field evaluations in the forward pass (the initial-step probe included).
        n_steps: accepted steps of the forward pass.
        n_rejected: rejected steps of the forward pass.
        nfe_backward: vector-field evaluations (each a VJP or a re-evaluation) of the backward
            pass, filled in by ``.backward()``; 0 before it.
        n_steps_backward, n_rejected_backward: steps of the backward pass (adjoint methods).
        n_jac: Jacobian evaluations (implicit methods).
        n_lu: LU factorisations (implicit methods).
        n_jac_backward, n_lu_backward: the same in the backward pass (backsolve and interpolated
            solve the adjoint with the implicit method too).
        recon_error: backsolve only: ``|y0_reconstructed - y0| / |y0|`` (relative L2), the drift of
            the state re-integrated backwards; ``None`` for the other methods.
        saved_bytes: bytes the gradient method stores itself for the backward pass (trajectories,
            checkpoints); autograd's own saved tensors are measured by :mod:`odebench.measure`.
        per_sample: ``solve(..., batch_dims=1)`` only: each sample's own counters
            (:class:`PerSampleStats`); ``None`` for a joint solve. In a batched solve ``nfe``
            counts the calls of ``func`` (each on the whole batch), and ``n_steps`` /
            ``n_rejected`` are the sums of the per-sample counters.
    """

    nfe: int = 0
    n_steps: int = 0
    n_rejected: int = 0
    nfe_backward: int = 0
    n_steps_backward: int = 0
    n_rejected_backward: int = 0
    n_jac: int = 0
    n_lu: int = 0
    n_jac_backward: int = 0
    n_lu_backward: int = 0
    recon_error: float | None = None
    saved_bytes: int = 0
    per_sample: PerSampleStats | None = None

    def record_backward(self, back: Stats, nfe: int) -> None:
        """Fill the ``*_backward`` counters from the counters ``back`` of a backward pass
        (solved as forward integrations); ``nfe`` evaluations in all."""
        self.nfe_backward = nfe
        self.n_steps_backward, self.n_rejected_backward = back.n_steps, back.n_rejected
        self.n_jac_backward, self.n_lu_backward = back.n_jac, back.n_lu


@dataclass
class PerSampleStats:
    """Counters of each sample of a batched solve (``batch_dims=1``): int64 CPU tensors [B].

    Attributes:
        n_steps: accepted steps of sample b.
        n_rejected: rejected steps of sample b.
        nfe: evaluations sample b's own steps needed while it was active (the initial stage and
            step-size probe included; what solving it alone costs). Each is one row of a batched
            call; the batched calls themselves are ``Stats.nfe``.
        n_iterations: iterations of the batched loop (each an attempted step of every active
            sample; the slowest sample's attempted steps).
    """

    n_steps: torch.Tensor
    n_rejected: torch.Tensor
    nfe: torch.Tensor
    n_iterations: int = 0

    @classmethod
    def zeros(cls, batch: int) -> PerSampleStats:
        """All counters 0 for ``batch`` samples."""
        return cls(*(torch.zeros(batch, dtype=torch.int64) for _ in range(3)))


@dataclass
class Solution:
    """A solve's result: ``ys[i]`` is the state at ``ts[i]``; shape [len(ts), *y0.shape]."""

    ts: torch.Tensor
    ys: torch.Tensor
    stats: Stats = field(default_factory=Stats)


@dataclass
class PartialSolution:
    """What a failed solve computed before it stopped.

    From a failed backward (adjoint) solve of backsolve or interpolated, ``ts`` are the output
    times the backward solve passed (from the last one back), ``ys`` the adjoint ``dL/dy`` at
    them (shape [m, *y0.shape]) and ``t_reached`` the time the adjoint reached.

    Attributes:
        ts: the output times passed, shape [m], in the dtype of the ``t`` passed.
        ys: the states at those times, shape [m, *y0.shape].
        stats: counters up to the failure.
        t_reached: the time the integration reached.
        h_last: the last step size tried.
    """

    ts: torch.Tensor
    ys: torch.Tensor
    stats: Stats
    t_reached: float
    h_last: float

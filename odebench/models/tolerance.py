"""A trained ODE-Net evaluated at a test-time tolerance other than its training one.

Chen et al. (NeurIPS 2018, Sec. 3 and Fig. 3) note that the tolerance of an ODE-Net's solver
can be loosened after training to trade accuracy for speed. :func:`evaluate_at_tolerance`
measures one such point: the forward NFE on the test batch, the test error, the wall clock
(median and IQR over repeats) and, against a float64 :func:`reference_state`, the relative
error of the ODE block's output state; the model's solver settings are restored afterwards.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from odebench.api import RTOL_FLOOR_EPS
from odebench.errors import InvalidInputError
from odebench.measure.errors import relative_l2
from odebench.measure.timing import median_iqr, median_wall
from odebench.models.odenet import ODEBlock, counted


@dataclass
class ToleranceEval:
    """One test-time tolerance of a trained classifier.

    Attributes:
        rtol, atol: the tolerances of every ODE solve of the evaluation.
        nfe_forward: vector-field evaluations of one forward pass over the whole test batch
            (summed over the model's solves).
        test_error: fraction of the test batch misclassified.
        wall_s: median wall clock of one forward pass over the test batch (no autograd), s.
        wall_iqr_s: interquartile range of those walls, s (``None`` below two repeats).
        n_repeats: timed repeats behind ``wall_s``.
        state_error: relative L2 error (over all entries) of the ODE block's output state
            z(T) on the reference inputs against the reference state; ``None`` without one.
    """

    rtol: float
    atol: float
    nfe_forward: int
    test_error: float
    wall_s: float
    wall_iqr_s: float | None
    n_repeats: int
    state_error: float | None = None


def _blocks(model: nn.Module) -> list[ODEBlock]:
    blocks = [m for m in model.modules() if isinstance(m, ODEBlock)]
    if not blocks:
        raise InvalidInputError("a test-tolerance evaluation needs a model with an ODEBlock")
    return blocks


@contextmanager
def _solving_at(model: nn.Module, rtol: float, atol: float) -> Iterator[None]:
    """Every ODE block of ``model`` solves at ``rtol``/``atol`` inside the block, in eval mode,
    with its solve log cleared; the solvers, the mode and the logs are restored after."""
    dtype = next(model.parameters()).dtype
    floor = RTOL_FLOOR_EPS * torch.finfo(dtype).eps
    if rtol < floor:
        raise InvalidInputError(f"rtol={rtol:g} is below what {dtype} resolves ({floor:.3g}); "
                                "the solve would run at another tolerance than the row says")
    blocks = _blocks(model)
    saved = [block.solver for block in blocks]
    was_training = model.training
    model.eval()
    try:
        for block in blocks:
            block.solver = dataclasses.replace(block.solver, rtol=rtol, atol=atol)
            block.func.solves.clear()
        yield
    finally:
        for block, solver in zip(blocks, saved, strict=True):
            block.solver = solver
            block.func.solves.clear()
        model.train(was_training)


def _block_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output z(T) of ``model``'s last ODE block on the inputs ``x``, without autograd."""
    captured: list[torch.Tensor] = []
    hook = _blocks(model)[-1].register_forward_hook(lambda m, i, out: captured.append(out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        hook.remove()
    return captured[-1]


def reference_state(model: nn.Module, x: torch.Tensor, rtol: float) -> torch.Tensor:
    """z(T) of ``model``'s last ODE block on ``x``, solved by a float64 copy of the model at
    ``rtol`` = ``atol``: the reference of :attr:`ToleranceEval.state_error` (float64)."""
    twin = copy.deepcopy(model).double()
    with _solving_at(twin, rtol, rtol):
        return _block_output(twin, x.double())


def evaluate_at_tolerance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rtol: float,
                          atol: float, repeats: int,
                          reference: tuple[torch.Tensor, torch.Tensor] | None = None
                          ) -> ToleranceEval:
    """Classify ``x`` [B, ...] (labels ``y`` [B]) with every ODE block of ``model`` solving at
    ``rtol``/``atol``; the wall clock is the median of ``repeats`` timed passes after the one
    that counted the NFE and the errors. ``reference`` = (inputs, their :func:`reference_state`)
    adds ``state_error`` (one more solve, on those inputs; not counted in ``nfe_forward``).

    Raises ``InvalidInputError`` for an ``rtol`` below what the parameters' dtype resolves (the
    solver would raise it to 100 x eps, and the row would not say what ran) and for a model
    without an ODE block.
    """
    funcs = counted(model)
    with _solving_at(model, rtol, atol):
        with torch.no_grad():
            logits = model(x)
        nfe = sum(s.nfe for f in funcs for s in f.solves)
        error = float((logits.argmax(1) != y).float().mean())

        def forward() -> None:
            with torch.no_grad():
                model(x)

        _, walls = median_wall(forward, repeats, warmup=0, sync_cuda=x.is_cuda)
        state_error = (None if reference is None else
                       relative_l2(_block_output(model, reference[0]).cpu(), reference[1].cpu()))
    wall, iqr = median_iqr(walls)
    return ToleranceEval(rtol=rtol, atol=atol, nfe_forward=nfe, test_error=error, wall_s=wall,
                         wall_iqr_s=iqr, n_repeats=len(walls), state_error=state_error)

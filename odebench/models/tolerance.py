"""A trained ODE-Net evaluated at a test-time tolerance other than its training one.

Chen et al. (NeurIPS 2018, Sec. 3 and Fig. 3) note that the tolerance of an ODE-Net's solver
can be loosened after training to trade accuracy for speed. :func:`evaluate_at_tolerance`
measures one such point: the forward NFE on the test batch, the test error and the wall clock
(median and IQR over repeats) at ``rtol``/``atol``; the model's solver settings are restored
afterwards.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from odebench.api import RTOL_FLOOR_EPS
from odebench.errors import InvalidInputError
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
    """

    rtol: float
    atol: float
    nfe_forward: int
    test_error: float
    wall_s: float
    wall_iqr_s: float | None
    n_repeats: int


def evaluate_at_tolerance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rtol: float,
                          atol: float, repeats: int) -> ToleranceEval:
    """Classify ``x`` [B, ...] (labels ``y`` [B]) with every ODE block of ``model`` solving at
    ``rtol``/``atol``; the wall clock is the median of ``repeats`` timed passes after the one
    that counted the NFE and the errors.

    Raises ``InvalidInputError`` for an ``rtol`` below what the parameters' dtype resolves (the
    solver would raise it to 100 x eps, and the row would not say what ran) and for a model
    without an ODE block.
    """
    blocks = [m for m in model.modules() if isinstance(m, ODEBlock)]
    if not blocks:
        raise InvalidInputError("evaluate_at_tolerance needs a model with an ODEBlock")
    dtype = next(model.parameters()).dtype
    floor = RTOL_FLOOR_EPS * torch.finfo(dtype).eps
    if rtol < floor:
        raise InvalidInputError(f"rtol={rtol:g} is below what {dtype} resolves ({floor:.3g}); "
                                "the solve would run at another tolerance than the row says")
    saved = [block.solver for block in blocks]
    funcs = counted(model)
    was_training = model.training
    model.eval()
    try:
        for block in blocks:
            block.solver = dataclasses.replace(block.solver, rtol=rtol, atol=atol)
        for f in funcs:
            f.solves.clear()
        with torch.no_grad():
            logits = model(x)
        nfe = sum(s.nfe for f in funcs for s in f.solves)
        error = float((logits.argmax(1) != y).float().mean())

        def forward() -> None:
            with torch.no_grad():
                model(x)

        _, walls = median_wall(forward, repeats, warmup=0, sync_cuda=x.is_cuda)
    finally:
        for block, solver in zip(blocks, saved, strict=True):
            block.solver = solver
        for f in funcs:
            f.solves.clear()
        model.train(was_training)
    wall, iqr = median_iqr(walls)
    return ToleranceEval(rtol=rtol, atol=atol, nfe_forward=nfe, test_error=error, wall_s=wall,
                         wall_iqr_s=iqr, n_repeats=len(walls))

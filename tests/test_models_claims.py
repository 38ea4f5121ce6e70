"""Tests of the models study's claim rows (Chen et al. 2018): NFE over training, test-time
tolerance of a trained ODE-Net, and saved bytes of one training step vs ResNet depth and vs
the ODE-Net's NFE per gradient method."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from odebench.errors import InvalidInputError
from odebench.measure.timing import pinned_threads
from odebench.models import train as tr
from odebench.models.data import digits
from odebench.models.tolerance import evaluate_at_tolerance, reference_state
from odebench.results import key_of
from odebench.studies import Settings
from odebench.studies import models as study

QUICK = Settings(mode="quick")


@pytest.fixture(autouse=True)
def _one_thread():
    with pinned_threads(1):
        yield


def _claim_rows(model: str, mode: str = "quick") -> list:
    return [r for r in study.grid(Settings(mode=mode)) if r.model == model]


def test_nfe_growth_compares_medians_of_the_first_and_last_tenth():
    forward = [10, 10, 40] + [20] * 24 + [30, 30, 90]
    record = tr.TrainRecord("m", "backprop", "dopri5", 0, "cpu", 1, nfe_forward=forward,
                            nfe_backward=[2 * n for n in forward])
    assert record.nfe_growth() == {"nfe_growth_window": 3, "nfe_forward_first": 10.0,
                                   "nfe_forward_last": 30.0, "nfe_backward_first": 20.0,
                                   "nfe_backward_last": 60.0}


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_claim_rows_have_distinct_keys_and_say_the_training_tolerance(mode):
    rows = study.grid(Settings(mode=mode))
    assert len({key_of(r) for r in rows}) == len(rows)
    train_tol = tr.solver_tolerance(tr.train_odenet, mode == "quick")
    tolerance_rows = _claim_rows("odenet_test_tol", mode)
    assert [r.rtol for r in tolerance_rows] == list(study.TEST_TOLERANCES[mode])
    assert all(r.params["train_tol"] == train_tol and r.gradient is None
               for r in tolerance_rows)
    assert {r.gradient for r in _claim_rows("odenet_memory", mode)} == set(study.ODE_GRADIENTS)
    assert all(r.batch == study.MEMORY_BATCH for r in _claim_rows("resnet_memory", mode))


def test_test_tolerance_rows_nfe_falls_as_rtol_loosens(monkeypatch):
    monkeypatch.setattr(study, "TEST_REPEATS", {"quick": 2})
    rows = [study.execute(r, QUICK) for r in _claim_rows("odenet_test_tol")]
    loosest_first = sorted(rows, key=lambda r: -r.rtol)
    nfe = [r.nfe_forward for r in loosest_first]
    assert nfe == sorted(nfe) and len(set(nfe)) == len(nfe), nfe
    errors = [r.sol_error for r in loosest_first]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    reference = rows[0].extra["sol_error_reference"]
    assert reference["dtype"] == "float64" and reference["spread"] < errors[-1] / 3
    for row in rows:
        assert 0.0 <= row.extra["test_error"] < 0.6
        assert row.extra["train_rtol"] == row.params["train_tol"]
        assert row.extra["solver"]["rtol"] == row.rtol and row.batch == row.extra["n_test"]
        assert row.n_repeats == 2 and row.wall_forward_iqr_s >= 0
    # the row at the training tolerance reproduces the training record's test error
    at_train = next(r for r in rows if r.rtol == r.params["train_tol"])
    assert at_train.extra["test_error"] == at_train.extra["train_test_error"]


def test_evaluate_at_tolerance_restores_the_solver_and_refuses_unresolvable_rtol():
    model, record = study._trained_odenet("backprop", True, "cpu")
    data = digits(0)
    x, y = data.x_test[:32], data.y_test[:32]
    before = model.block.solver
    result = evaluate_at_tolerance(model, x, y, 1e-1, 1e-1, repeats=1)
    assert model.block.solver == before and result.nfe_forward > 0 and result.n_repeats == 1
    with pytest.raises(InvalidInputError, match="rtol=1e-06"):
        evaluate_at_tolerance(model, x, y, 1e-6, 1e-6, repeats=1)
    state = reference_state(model, x[:4], 1e-3)
    assert state.dtype == torch.float64 and state.shape == (4, 16, 4, 4)
    assert model.block.solver == before and next(model.parameters()).dtype == torch.float32


def test_a_test_tolerance_row_that_disagrees_with_its_training_is_refused():
    row = _claim_rows("odenet_test_tol")[0]
    row = dataclasses.replace(row, params={**row.params, "train_tol": 1e-7})
    with pytest.raises(InvalidInputError, match="train_tol"):
        study.execute(row, QUICK)


def test_resnet_bytes_grow_with_depth_backprop_with_nfe_backsolve_flat():
    resnet = [study.execute(r, QUICK) for r in _claim_rows("resnet_memory")]
    by_depth = sorted(resnet, key=lambda r: r.params["n_blocks"])
    saved = [r.saved_bytes for r in by_depth]
    assert all(a < b for a, b in zip(saved, saved[1:])), saved
    odenet = {}
    for row in _claim_rows("odenet_memory"):
        if row.gradient in ("backprop", "backsolve"):
            done = study.execute(row, QUICK)
            odenet.setdefault(row.gradient, []).append((done.nfe_forward, done.saved_bytes))
    backprop, backsolve = sorted(odenet["backprop"]), sorted(odenet["backsolve"])
    assert len({n for n, _ in backprop}) == len(backprop)  # the tolerances set distinct NFE
    assert all(a[1] < b[1] for a, b in zip(backprop, backprop[1:])), backprop
    assert len({b for _, b in backsolve}) == 1, backsolve  # O(1) in the NFE
    assert backsolve[0][1] < backprop[0][1]

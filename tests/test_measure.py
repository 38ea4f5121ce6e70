"""odebench.measure: saved-tensor bytes, NFE counting, timing helpers, error metrics, peak RSS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import odebench
from odebench import problems
from odebench.measure import (
    CountingField,
    CudaPeakMeter,
    SavedTensorMeter,
    median_iqr,
    median_wall,
    peak_rss_subprocess,
    pinned_threads,
    relative_error_series,
    relative_l2,
    scd,
)

F64 = torch.float64


# ---- SavedTensorMeter ---------------------------------------------------------------------


def test_meter_counts_each_storage_once():
    x = torch.randn(100, dtype=F64, requires_grad=True)  # 800 bytes
    with SavedTensorMeter() as meter:
        y = x.sin()  # saves x
        z = y * y  # saves y twice
        loss = (z * x).sum()  # saves z and x again
    assert meter.n_saved == 5
    assert meter.bytes == 3 * 800  # x, y, z: each storage once
    del loss
    assert meter.bytes == 3 * 800  # what was saved when the block ended


def test_meter_counts_a_view_at_its_storage_size():
    x = torch.randn(10, 10, dtype=F64, requires_grad=True)
    with SavedTensorMeter() as meter:
        y = x[0].sin()  # saves a view of x's 800-byte storage
    assert meter.bytes == 800
    assert y.requires_grad


def test_meter_forgets_graphs_freed_inside_the_block():
    x = torch.randn(100, dtype=F64, requires_grad=True)
    with SavedTensorMeter() as meter:
        kept = x.sin()  # saves x
        y = x.exp()  # saves its output
        del y
    assert meter.bytes == 800  # only sin's saved x is still needed
    assert meter.peak_bytes == 1600
    assert kept.requires_grad


def test_meter_leaves_gradients_unchanged():
    x = torch.randn(50, dtype=F64, requires_grad=True)

    def grad() -> torch.Tensor:
        y = x.exp()
        (g,) = torch.autograd.grad((y * y).tanh().sum(), x)
        return g

    plain = grad()
    with SavedTensorMeter():
        metered = grad()
    assert torch.equal(plain, metered)


def test_meter_is_zero_without_grad():
    x = torch.randn(100, dtype=F64, requires_grad=True)
    with SavedTensorMeter() as meter, torch.no_grad():
        x.sin()
    assert meter.bytes == 0


# ---- CountingField ------------------------------------------------------------------------


class Decay(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor([0.5, 1.5], dtype=F64))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self.k * y


def test_counting_field_counts_calls_and_vjps():
    field = CountingField(Decay())
    assert [id(p) for p in field.parameters()] == [id(p) for p in field.func.parameters()]
    y = torch.ones(2, dtype=F64, requires_grad=True)
    t = torch.tensor(0.0, dtype=F64)
    for _ in range(3):
        y = y + 0.1 * field(t, y)
    with torch.no_grad():
        field(t, y)  # a call without a graph: counted, never differentiated
    assert (field.n_forward, field.n_backward) == (4, 0)
    with field.phase("backward"):
        y.sum().backward()
    assert field.n_backward == 3
    assert field.nfe_forward == 4
    assert field.nfe_backward == 3  # backprop: the VJPs through forward-phase calls
    field.reset()
    assert (field.n_forward, field.n_backward, field.nfe_backward) == (0, 0, 0)


def test_counting_field_counts_under_torch_func():
    field = CountingField(Decay())
    t = torch.tensor(0.0, dtype=F64)

    def one(y: torch.Tensor) -> torch.Tensor:
        _, vjp = torch.func.vjp(lambda z: field(t, z), y)
        return vjp(torch.ones_like(y))[0]

    torch.func.vmap(one)(torch.ones(4, 2, dtype=F64))
    assert (field.n_forward, field.n_backward) == (1, 1)  # one batched call, one batched VJP


def _counted_solve(gradient: str) -> tuple[CountingField, odebench.Stats]:
    field = CountingField(Decay())
    y0 = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1, 5, dtype=F64)
    sol = odebench.solve(field, y0, t, method="dopri5", rtol=1e-6, atol=1e-8, gradient=gradient)
    with field.phase("backward"):
        sol.ys.sum().backward()
    assert field.func.k.grad is not None
    return field, sol.stats


@pytest.mark.parametrize("gradient", ["backsolve", "interpolated", "checkpointed"])
def test_counting_field_agrees_with_odebench_adjoint_stats(gradient):
    field, stats = _counted_solve(gradient)
    assert field.nfe_forward == stats.nfe
    assert field.nfe_backward == stats.nfe_backward


def test_counting_field_counts_backprop_vjps_actually_taken():
    field, stats = _counted_solve("backprop")
    assert field.nfe_forward == stats.nfe
    # an evaluation that feeds no output (the last step's FSAL stage) is never differentiated:
    # it takes no VJP and odebench does not count it
    assert field.nfe_backward == field.n_backward == stats.nfe_backward


@pytest.mark.parametrize(("problem", "method"), [("kepler", "dopri5"),
                                                  ("lotka_volterra", "dop853")])
def test_backprop_nfe_backward_counts_only_the_evaluations_backward_traverses(problem, method):
    # issue 13: Kepler dopri5 tol 1e-6 recorded 253 evaluations under autograd, the backward
    # pass traverses 234; Lotka-Volterra dop853 664 against 567
    pr = problems.get(problem)
    field = CountingField(pr.func())
    y0 = pr.y0.clone().requires_grad_()
    sol = odebench.solve(field, y0, pr.t_eval, method=method, rtol=1e-6, atol=1e-6)
    assert sol.stats.n_rejected > 0  # rejected attempts are recorded but never traversed
    pr.loss(sol.ys).backward()
    assert sol.stats.nfe_backward == field.vjps["forward"]  # outputs that got a gradient
    assert sol.stats.nfe_backward < sol.stats.nfe - 1  # below every recorded evaluation


def test_counting_field_rejects_unknown_phase():
    with pytest.raises(ValueError, match="phase"), CountingField(Decay()).phase("sideways"):
        pass


# ---- timing -------------------------------------------------------------------------------


def test_median_wall_runs_warmup_and_repeats():
    calls = []
    median, times = median_wall(lambda: calls.append(sum(range(1000))), repeats=5, warmup=2)
    assert len(calls) == 7 and len(times) == 5
    assert median > 0 and all(s > 0 for s in times)
    assert median == sorted(times)[2]


def test_median_wall_stops_over_budget():
    _, times = median_wall(lambda: sum(range(1000)), repeats=5, warmup=0, budget_s=0.0)
    assert len(times) == 1


def test_median_wall_rejects_no_repeats():
    with pytest.raises(ValueError):
        median_wall(lambda: None, repeats=0)


def test_median_iqr_by_hand():
    assert median_iqr([3.0]) == (3.0, None)
    assert median_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, 2.0)  # quartiles 2 and 4
    assert median_iqr([4.0, 1.0]) == (2.5, 1.5)  # numpy: percentile 75 - 25 = 3.25 - 1.75
    with pytest.raises(ValueError):
        median_iqr([])


def test_cuda_peak_meter_measures_nothing_on_the_cpu():
    with CudaPeakMeter(None) as meter:
        torch.zeros(1000)
    assert meter.peak_bytes is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_meter_sees_a_temporary_allocation():
    keep = torch.zeros(1024, device="cuda")
    with CudaPeakMeter("cuda") as meter:
        tmp = torch.zeros(2**20, device="cuda")  # 4 MiB
        del tmp
    assert 4 * 2**20 <= meter.peak_bytes < 5 * 2**20
    del keep


def test_pinned_threads_restores():
    before = torch.get_num_threads()
    with pinned_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---- error metrics ------------------------------------------------------------------------


def test_relative_l2_by_hand():
    assert relative_l2([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert relative_l2([3.0, 4.0], [0.0, 5.0]) == pytest.approx(math.sqrt(9 + 1) / 5)
    assert relative_l2([0.0, 1e-3], [0.0, 0.0]) == pytest.approx(1e-3)  # zero truth: absolute
    with pytest.raises(ValueError):
        relative_l2([1.0], [1.0, 2.0])


def test_relative_error_series_per_time():
    ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    ys = np.array([[1.1, 0.0], [0.0, 2.0]])
    assert relative_error_series(ys, ref) == pytest.approx([0.1, 0.0])


def test_scd_by_hand():
    assert scd([1.001, 5.0], [1.0, 5.0], floor=1e-12) == pytest.approx(3.0)
    # a component near zero is judged against the floor, not its own size
    assert scd([1.0, 1e-8], [1.0, 1e-20], floor=1e-4) == pytest.approx(4.0)
    assert scd([2.0], [2.0], floor=1e-12) == math.inf
    assert math.isnan(scd([math.nan], [1.0], floor=1e-12))
    with pytest.raises(ValueError):
        scd([1.0], [1.0], floor=0.0)


# ---- peak RSS -----------------------------------------------------------------------------


@pytest.mark.slow
def test_peak_rss_subprocess_is_plausible():
    from odebench.backends.base import RunSpec, probe_spec
    from odebench.problems import get

    spec = RunSpec(problem=get("lotka_volterra", T=1.0), method="dopri5", rtol=1e-6,
                   atol=1e-8, gradient="backprop", problem_kwargs={"T": 1.0})
    rss = peak_rss_subprocess(probe_spec("odebench", spec), timeout_s=300)
    assert rss.status == "ok", rss.message
    assert rss.baseline_bytes > 50 * 2**20  # torch alone is more
    assert rss.peak_bytes >= rss.baseline_bytes
    assert rss.increment_bytes >= 0


def test_peak_rss_subprocess_runs_with_the_malloc_settings(monkeypatch):
    import subprocess

    from odebench.measure import memory

    seen = {}

    def fake_run(command, **kwargs):
        seen.update(kwargs["env"])
        report = '{"baseline_bytes": 100, "nograd_bytes": 120, "peak_bytes": 150, ' \
                 '"status": "ok", "message": ""}'
        return subprocess.CompletedProcess(command, 0, stdout=report, stderr="")

    monkeypatch.setattr(memory.subprocess, "run", fake_run)
    rss = peak_rss_subprocess({"backend": "odebench"})
    assert seen["MALLOC_MMAP_THRESHOLD_"] == "65536" and seen["MALLOC_TRIM_THRESHOLD_"] == "0"
    assert (rss.increment_bytes, rss.nograd_increment_bytes) == (50, 20)


@pytest.mark.slow
def test_peak_rss_growth_tracks_the_saved_tensors():
    # issue 13: with the malloc settings, growth above the import baseline follows the live
    # tensors (MLP d16 w256 batch 256: backprop grows with T, backsolve does not)
    from odebench.backends import get
    from odebench.backends.base import RunSpec

    growth, saved = {}, {}
    for gradient in ("backprop", "backsolve"):
        for T in (1.0, 4.0):
            kwargs = {"dim": 16, "width": 256, "batch": 256, "T": T, "n_points": 2}
            spec = RunSpec(problem=problems.get("mlp", **kwargs), method="dopri5", rtol=1e-6,
                           atol=1e-6, gradient=gradient, repeats=0, measure_rss=True,
                           problem_kwargs=kwargs)
            m = get("odebench").solve(spec)
            assert m.status == "ok", m.message
            growth[gradient, T], saved[gradient, T] = m.peak_rss_growth_bytes, m.saved_bytes
    backprop_rise = growth["backprop", 4.0] - growth["backprop", 1.0]
    saved_rise = saved["backprop", 4.0] - saved["backprop", 1.0]
    assert saved_rise > 20 * 2**20
    assert 0.5 * saved_rise < backprop_rise < 2 * saved_rise
    assert abs(growth["backsolve", 4.0] - growth["backsolve", 1.0]) < 10 * 2**20
    assert growth["backprop", 4.0] > growth["backsolve", 4.0] + saved_rise / 2


@pytest.mark.slow
def test_peak_rss_subprocess_reports_a_bad_spec():
    with pytest.raises(RuntimeError, match="rss probe"):
        peak_rss_subprocess({"backend": "nonexistent"}, timeout_s=120)

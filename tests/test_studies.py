"""Study grids and the rows their runs write: what ran is what the row says (issue 13)."""

from __future__ import annotations

import pytest

from odebench.results import key_of
from odebench.studies import Settings, get, memory_scaling

BACKSOLVE_STUDIES = ("gradient_accuracy", "lorenz_drift", "memory_scaling")


@pytest.mark.parametrize("mode", ["quick", "full"])
@pytest.mark.parametrize("study", BACKSOLVE_STUDIES)
def test_odebench_backsolve_runs_with_and_without_reanchoring(study, mode):
    rows = get(study).grid(Settings(mode=mode))
    odebench = [r for r in rows if r.backend == "odebench"]
    plain = {(r.problem, r.rtol, r.T, r.width) for r in odebench if r.gradient == "backsolve"}
    anchored = {(r.problem, r.rtol, r.T, r.width) for r in odebench
                if r.gradient == "backsolve+reanchor"}
    assert plain and plain == anchored
    assert len({key_of(r) for r in rows}) == len(rows)  # no two rows share a key


def test_a_reanchor_row_says_what_ran():
    row = next(r for r in get("gradient_accuracy").grid(Settings())
               if r.problem == "lotka_volterra" and r.gradient == "backsolve+reanchor"
               and r.rtol == 1e-6)
    done = get("gradient_accuracy").execute(row, Settings())
    assert done.status == "ok", done.message
    assert done.gradient == "backsolve+reanchor" and done.reanchor is True
    assert done.peer_method == "dopri5" and done.grad_error < 1e-4
    assert done.n_repeats == 3 and done.wall_forward_iqr_s is not None


def test_memory_grid_uses_sizes_where_methods_differ():
    rows = memory_scaling.grid(Settings(mode="full"))
    at_width = [r for r in rows if r.width == 256]
    assert {r.T for r in at_width} == {1.0, 2.0, 5.0, 10.0}  # memory vs T: the O(1) claim
    assert {r.width for r in rows if r.T == 2.0} == {64, 256, 512}
    assert all(r.batch == 256 and r.state_dim == 16 and r.rtol == 1e-8 for r in rows)
    assert memory_scaling.FULL["rss"] is True


def test_memory_execute_measures_the_subprocess_only_in_full(monkeypatch):
    seen = []
    monkeypatch.setattr(memory_scaling, "measure",
                        lambda row, settings, **kw: seen.append(kw) or row)
    row = memory_scaling.grid(Settings(mode="full"))[0]
    memory_scaling.execute(row, Settings(mode="full"))
    memory_scaling.execute(row, Settings(mode="quick"))
    assert [kw["measure_rss"] for kw in seen] == [True, False]
    assert all(kw["repeats"] >= 3 for kw in seen)  # walls carry a spread


def test_overhead_rows_carry_the_spread_of_their_walls():
    study = get("overhead")
    row = next(r for r in study.grid(Settings()) if r.backend == "odebench"
               and r.problem == "mlp_small")
    done = study.execute(row, Settings())
    assert done.status == "ok", done.message
    assert done.n_repeats == 15 and done.wall_forward_iqr_s >= 0


def test_work_precision_full_tolerances_bracket_the_errors_compared():
    rows = get("work_precision").grid(Settings(mode="full"))
    rtols = {}
    for r in rows:
        rtols.setdefault((r.problem, r.backend, r.method), set()).add(r.rtol)
    for (_, backend, method), values in rtols.items():
        assert max(values) == 1e-2, (backend, method)
        assert min(values) == (1e-10 if method == "bosh3" else 1e-12), (backend, method)
    assert {"odebench", "scipy", "torchdiffeq"} <= {backend for _, backend, _ in rtols}
    quick = get("work_precision").grid(Settings(mode="quick"))
    assert {r.rtol for r in quick} == {1e-4, 1e-6, 1e-8}  # CI grid unchanged

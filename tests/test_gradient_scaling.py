"""The gradient_scaling study: its grid (both axes, every gradient method, forward only where
it fits), one measured row, and the per-cell winner it declares."""

from __future__ import annotations

import dataclasses

import odebench
from odebench import problems
from odebench.studies import get
from odebench.studies import gradient_scaling as gs
from odebench.studies.base import Settings


def test_registered_and_grids_cover_both_axes_and_every_gradient():
    assert get("gradient_scaling") is gs.STUDY
    quick, full = gs.grid(Settings()), gs.grid(Settings(mode="full"))
    assert len(quick) < len(full)
    ours = {r.gradient for r in quick if r.backend == "odebench"}
    assert ours == set(odebench.GRADIENTS)
    assert {r.method for r in quick if r.gradient == "reversible"} == {"reversible_heun"}
    cells = {gs.cell_of(r) for r in full}
    n_params = sorted({c[2] for c in cells if c[0] == "params"})
    states = sorted({c[3] for c in cells if c[0] == "state"})
    assert n_params[0] < 20 and n_params[-1] > 1e6
    assert states[0] == 2 and states[-1] >= 1e4
    for row in full:
        if row.gradient == "forward":
            assert gs.forward_fits(row.state_dim, row.params["n_params"])
    assert not gs.forward_fits(2, 1_006_002)


def test_cell_sizes_are_the_problems_sizes():
    for axis, name, kwargs, m, n in gs.configs(gs.QUICK):
        problem = problems.get(name, **kwargs)
        assert (problem.p.numel(), problem.y0.numel()) == (m, n), (axis, name, kwargs)


def test_one_row_is_measured_and_the_winner_is_the_fastest():
    row = next(r for r in gs.grid(Settings()) if r.gradient == "forward"
               and r.params["n_params"] == gs.mlp_params(2))
    measured = gs.execute(row, Settings())
    assert measured.status == "ok", measured.message
    assert measured.wall_forward_s > 0 and measured.wall_backward_s >= 0
    assert measured.nfe_forward > 0 and measured.nfe_backward == 0
    assert measured.saved_bytes > 0 and measured.grad_error is None
    slower = dataclasses.replace(measured, gradient="backprop",
                                 wall_forward_s=measured.wall_forward_s + 1.0)
    failed = dataclasses.replace(measured, gradient="backsolve", status="max_steps",
                                 wall_forward_s=0.0)
    assert gs.winners([slower, measured, failed]) == {gs.cell_of(row): measured}

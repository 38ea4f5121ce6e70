"""Early stiffness detection for explicit adaptive methods (odebench.stiffness)."""

from __future__ import annotations

import pytest

import odebench
from odebench import problems, segments, stiffness
from odebench.solvers.registry import ADAPTIVE_METHODS

STIFF_CASES = [("rober", {}), ("vdpol", {}), ("vdp", {"mu": 1e6})]


@pytest.mark.parametrize("name,kwargs", STIFF_CASES, ids=[c[0] for c in STIFF_CASES])
@pytest.mark.parametrize("record", [False, True])
def test_stiff_problems_stop_early(name, kwargs, record):
    """ROBER to 1e11, VDPOL (eps 1e-6), Van der Pol mu=1e6 under dopri5, with the default budget
    of 100,000 steps: stopped after a few thousand, with and without autograd recording."""
    p = problems.get(name, **kwargs)
    y0 = p.y0.clone().requires_grad_(record)
    with pytest.raises(odebench.MaxStepsExceededError, match="stiffness detected") as info:
        odebench.solve(p.func(), y0, p.t_eval, method="dopri5", rtol=1e-6, atol=1e-8)
    partial = info.value.partial
    assert partial.stats.n_steps + partial.stats.n_rejected < 5000
    assert "STIFF_METHODS" in str(info.value)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_every_explicit_adaptive_method_detects(method):
    p = problems.get("rober")
    with pytest.raises(odebench.MaxStepsExceededError, match="stiffness detected"):
        odebench.odeint(p.func(), p.y0, p.t_eval, method=method)


def test_switched_off_runs_to_the_budget():
    p = problems.get("rober")
    with pytest.raises(odebench.MaxStepsExceededError) as info:
        odebench.odeint(p.func(), p.y0, p.t_eval, options={"stiffness_check": False,
                                                           "max_num_steps": 3000})
    assert "stiffness detected" not in str(info.value) and "max_num_steps=3000" in str(info.value)


@pytest.mark.parametrize("name", [n for n in problems.names(stiff=False) if n != "mlp_large"])
def test_no_false_alarm_on_the_nonstiff_registry(name, monkeypatch):
    """Checked every 20 evaluations with a budget of half the steps needed, so that the budget
    projection fires and the stability test decides: it never finds h |lambda| > 1; with the
    default budget every solve succeeds."""
    monkeypatch.setattr(stiffness, "CHECK_EVERY", 20)
    monitors = []

    class Recorded(stiffness.StiffnessMonitor):
        def __init__(self, *args):
            super().__init__(*args)
            monitors.append(self)

    monkeypatch.setattr(segments, "StiffnessMonitor", Recorded)
    p = problems.get(name)
    f = p.func()
    for rtol in (1e-3, 1e-6, 1e-9):
        sol = odebench.solve(f, p.y0, p.t_eval, rtol=rtol, atol=rtol / 100)
        needed = sol.stats.n_steps + sol.stats.n_rejected
        with pytest.raises(odebench.MaxStepsExceededError) as info:
            odebench.solve(f, p.y0, p.t_eval, rtol=rtol, atol=rtol / 100,
                           options={"max_num_steps": max(needed // 2, 1)})
        assert "stiffness detected" not in str(info.value)
    products = [x for m in monitors for x in m.products]
    assert products and max(products) < 1.0

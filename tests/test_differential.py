"""Differential check of the solver core: every registry problem x every method x every gradient
mode (float64, short intervals) against values recorded on the code before the solver redesign
(issue 18): solutions, gradients and step counts must not change.

The fixture ``tests/data/differential.json`` was written by ``python tests/test_differential.py``
on main at da8a9d2 (before the redesign). Regenerating it is a deliberate act: a change of
results must be argued in its commit message.

Values agree to 1e-12 relative (with a floor of 1e-12 times the largest entry of the same
array); forward step, rejection, NFE and Jacobian counts agree exactly, and so do the backward
step counts. Backward evaluation counts may only fall (the checkpointed replay skips the FSAL
stage no step uses).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import odebench
from odebench import problems
from odebench.errors import OdeBenchError

FIXTURE = Path(__file__).parent / "data" / "differential.json"
# problems added to the registry after the recording (on da8a9d2) have no old results to agree with
ADDED_LATER = {"brusselator_2d"}
PROBLEMS = [n for n in problems.names() if n != "mlp_large" and n not in ADDED_LATER]
# the explicit methods spend their whole step budget on these (10-30 s each): -m slow
SLOW = {"e5", "hires", "orego", "rober", "stiff_linear", "vdpol"}
GRADIENT_MODES = ("backprop", "backsolve", "interpolated", "checkpointed")
RTOL, ATOL = 1e-6, 1e-8
MAX_STEPS = 400
# the augmented adjoint systems of the stiff methods take dense Jacobians of size n + params:
# only the small problems run them
MAX_AUGMENTED_STIFF = 64
FORWARD_COUNTS = ("nfe", "n_steps", "n_rejected", "n_jac", "n_lu")
BACKWARD_STEPS = ("n_steps_backward", "n_rejected_backward", "n_jac_backward", "n_lu_backward")


def _interval(pr: problems.Problem) -> list[float]:
    """Three output times over a short interval: half of the first output interval."""
    t0, t1 = float(pr.t_eval[0]), float(pr.t_eval[1])
    span = 0.5 * (t1 - t0)
    return [t0, t0 + 0.4 * span, t0 + span]


def _options(method: str, ts: list[float], mode: str) -> dict:
    opts: dict = {"max_num_steps": MAX_STEPS}
    if method in odebench.solvers.FIXED_METHODS:
        opts["step_size"] = (ts[-1] - ts[0]) / 8
    if mode == "checkpointed":
        opts["checkpoint_every"] = 2
    return opts


def _projection(n: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)


def _summary(x: torch.Tensor) -> list[float]:
    """A tensor as stored: in full up to 32 entries, else its sum and a fixed projection."""
    flat = x.detach().reshape(-1)
    if flat.numel() <= 32:
        return flat.tolist()
    return [float(flat.sum()), float(flat @ _projection(flat.numel()))]


def run_case(name: str, method: str, mode: str) -> dict | None:
    """One solve (``mode`` "forward" or a gradient mode): its values and counters, or the
    error's class name; None when the case is not run."""
    pr = problems.get(name)
    ts = _interval(pr)
    func = pr.func()
    n_aug = 2 * pr.y0.numel() + pr.p.numel()
    if (method in odebench.STIFF_METHODS and mode in ("backsolve", "interpolated")
            and n_aug > MAX_AUGMENTED_STIFF):
        return None
    y0 = pr.y0.clone().requires_grad_(mode != "forward")
    t = torch.tensor(ts, dtype=torch.float64)
    kwargs = dict(method=method, rtol=RTOL, atol=ATOL, options=_options(method, ts, mode))
    try:
        if mode == "forward":
            with torch.no_grad():
                sol = odebench.solve(func, y0, t, **kwargs)
            out = {"ys": _summary(sol.ys)}
        else:
            sol = odebench.solve(func, y0, t, gradient=mode, **kwargs)
            w = pr.loss_weights()
            loss = (sol.ys[-1] * w).sum() + 0.5 * (sol.ys[1] * w).sum()
            params = [y0, *[p for p in func.parameters() if p.requires_grad]]
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            out = {"ys": _summary(sol.ys),
                   "grads": [_summary(g) if g is not None else [] for g in grads]}
    except OdeBenchError as err:
        return {"error": type(err).__name__}
    counts = FORWARD_COUNTS if mode == "forward" else FORWARD_COUNTS + BACKWARD_STEPS + (
        "nfe_backward",)
    out.update({k: getattr(sol.stats, k) for k in counts})
    return out


def cases() -> list[tuple[str, str, str]]:
    return [(name, method, mode) for name in PROBLEMS for method in odebench.METHODS
            for mode in ("forward", *GRADIENT_MODES)]


def _close(new: list[float], old: list[float]) -> bool:
    if len(new) != len(old):
        return False
    scale = max((abs(v) for v in old), default=0.0)
    return all(abs(a - b) <= 1e-12 * max(abs(b), scale, 1e-300) for a, b in zip(new, old))


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in PROBLEMS])
def test_matches_recorded(name: str, recorded: dict) -> None:
    """Every method and gradient mode on ``name`` reproduces the recorded values and counts."""
    failures = []
    for method in odebench.METHODS:
        for mode in ("forward", *GRADIENT_MODES):
            key = f"{name}/{method}/{mode}"
            if key not in recorded:
                continue  # a method added after the recording
            old, new = recorded[key], run_case(name, method, mode)
            if old is None or new is None:
                if old is not new:
                    failures.append(f"{key}: ran {old is not None} before, {new is not None} now")
                continue
            if "error" in old or "error" in new:
                if old.get("error") != new.get("error"):
                    failures.append(f"{key}: error {old.get('error')} before, "
                                    f"{new.get('error')} now")
                continue
            for k in (*FORWARD_COUNTS, *(BACKWARD_STEPS if mode != "forward" else ())):
                if old[k] != new[k]:
                    failures.append(f"{key}: {k} {old[k]} before, {new[k]} now")
            if mode != "forward" and new["nfe_backward"] > old["nfe_backward"]:
                failures.append(f"{key}: nfe_backward rose {old['nfe_backward']} -> "
                                f"{new['nfe_backward']}")
            if not _close(new["ys"], old["ys"]):
                failures.append(f"{key}: ys changed")
            for i, (g_new, g_old) in enumerate(zip(new.get("grads", []), old.get("grads", []))):
                if not _close(g_new, g_old):
                    failures.append(f"{key}: gradient {i} changed")
    assert not failures, "\n".join(failures)


def test_fixture_covers_every_method(recorded: dict) -> None:
    """The recording holds every problem and every method that existed when it was made."""
    methods = {key.split("/")[1] for key in recorded}
    assert {"euler", "midpoint", "rk4", "bosh3", "dopri5", "tsit5", "dop853", "rodas4",
            "rodas5p"} <= methods
    assert {key.split("/")[0] for key in recorded} == set(PROBLEMS)


if __name__ == "__main__":
    torch.set_num_threads(1)
    table = {f"{n}/{m}/{g}": run_case(n, m, g) for n, m, g in cases()}
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(table, separators=(",", ":")))
    print(f"wrote {len(table)} cases to {FIXTURE}", file=sys.stderr)

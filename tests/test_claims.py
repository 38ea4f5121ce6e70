"""The claims' verdicts come from the rows: synthetic rows flip each one."""

from __future__ import annotations

import pandas as pd

from odebench.report.claims import (
    CONFIRMED,
    NOT_MEASURED,
    PARTLY,
    REFUTED,
    evaluate_claims,
    to_markdown,
    write_claims,
)
from odebench.results import Row

STAMP = "2024-05-01T12:00:00+00:00"


def row(study: str, **values) -> dict:
    defaults = dict(problem="p", backend="odebench", method="dopri5", rtol=1e-6, atol=1e-8,
                    dtype="float64", device="cpu", timestamp=STAMP)
    return Row(study=study, **{**defaults, **values}).to_dict()


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def claim(rows: pd.DataFrame, key: str):
    return next(c for c in evaluate_claims(rows) if c.key == key)


def part(rows: pd.DataFrame, key: str, name: str):
    return next(p for p in claim(rows, key).parts if p.name == name)


def classifier(ode_error: float, ode_params: int = 40_000) -> list[dict]:
    rows = []
    for seed in (0, 1, 2):
        for model, error, n_params in (("odenet", ode_error, ode_params),
                                       ("resnet", 0.02, 100_000)):
            rows.append(row("models", problem="digits", model=model, gradient="backprop",
                            params={"seed": seed},
                            extra={"test_error": error, "n_params": n_params, "n_test": 360}))
    return rows


def memory(backsolve_grows: bool) -> list[dict]:
    return [row("memory_scaling", problem="mlp", gradient=g, T=T, width=16,
                saved_bytes=int(1000 * T) if g == "backprop" or backsolve_grows else 500,
                grad_error=1e-6 if g == "backprop" else 1e-8)
            for T in (1.0, 2.0, 5.0) for g in ("backprop", "backsolve")]


def test_no_rows_means_not_measured():
    claims = evaluate_claims(pd.DataFrame())
    assert [c.key for c in claims] == list("abcdef")
    for c in claims:
        assert c.verdict == NOT_MEASURED
        assert all(p.verdict == NOT_MEASURED and p.evidence for p in c.parts)


def test_accuracy_verdict_follows_the_error():
    good = frame(*classifier(0.02), *memory(backsolve_grows=False))
    assert claim(good, "a").verdict == CONFIRMED
    assert "2.00%" in part(good, "a", "test error").evidence
    assert "360 test images" in claim(good, "a").data
    worse = frame(*classifier(0.10), *memory(backsolve_grows=False))
    assert part(worse, "a", "test error").verdict == REFUTED
    assert "10.00%" in part(worse, "a", "test error").evidence
    assert claim(worse, "a").verdict == PARTLY
    everything_wrong = frame(*classifier(0.10, ode_params=90_000), *memory(backsolve_grows=True))
    assert claim(everything_wrong, "a").verdict == REFUTED


def test_backward_nfe_band():
    def runs(ratio: float) -> pd.DataFrame:
        return frame(*[row("models", model=m, gradient="backsolve", nfe_forward=100,
                           nfe_backward=int(100 * ratio),
                           extra={"nfe_backward_over_forward": ratio}) for m in ("a", "b")])

    assert part(runs(0.5), "b", "training").verdict == CONFIRMED
    assert part(runs(1.4), "b", "training").verdict == REFUTED
    assert "1.4" in part(runs(1.4), "b", "training").evidence
    assert part(runs(0.5), "b", "benchmarks").verdict == NOT_MEASURED


def test_backprop_cost_parts_are_separate():
    rows = frame(*memory(backsolve_grows=False))
    assert part(rows, "c", "memory").verdict == CONFIRMED
    assert part(rows, "c", "numerical error").verdict == CONFIRMED
    flipped = rows.assign(grad_error=[1e-9 if g == "backprop" else 1e-5 for g in rows.gradient])
    assert part(flipped, "c", "numerical error").verdict == REFUTED
    assert part(flipped, "c", "memory").verdict == CONFIRMED
    assert claim(flipped, "c").verdict == PARTLY


def lorenz(backsolve_error: float, stop_at: float | None) -> pd.DataFrame:
    rows = []
    for T in (1.0, 2.0, 3.0):
        for gradient in ("backprop", "backsolve"):
            stopped = gradient == "backsolve" and stop_at is not None and T >= stop_at
            error = backsolve_error * T if gradient == "backsolve" else 1e-8
            rows.append(row("lorenz_drift", problem="lorenz", gradient=gradient, T=T,
                            grad_error=None if stopped else error,
                            status="max_steps" if stopped else "ok"))
    return frame(*rows)


def test_backsolve_drift():
    drifting = lorenz(1e-3, stop_at=3.0)
    assert claim(drifting, "d").verdict == CONFIRMED
    evidence = part(drifting, "d", "drift").evidence
    assert "passes 0.001 at T 2" in evidence and "stops at T 3 (max_steps)" in evidence
    assert claim(lorenz(1e-8, stop_at=None), "d").verdict == REFUTED


def test_nfe_growth_and_tolerance_sweep():
    def runs(last: float, sweep: list[dict] | None) -> pd.DataFrame:
        extra = {"nfe_forward_first": 20.0, "nfe_forward_last": last}
        if sweep is not None:
            extra["tolerance_sweep"] = sweep
        return frame(row("models", model="cnf", gradient="backprop", extra=extra))

    assert part(runs(40.0, None), "e", "NFE during training").verdict == CONFIRMED
    assert part(runs(20.0, None), "e", "NFE during training").verdict == REFUTED
    assert part(runs(40.0, None), "e", "looser tolerance at test time").verdict == NOT_MEASURED
    assert claim(runs(40.0, None), "e").verdict == PARTLY  # a part not measured: not confirmed
    faster = [{"rtol": 1e-7, "nfe_forward": 80, "error": 0.01},
              {"rtol": 1e-3, "nfe_forward": 20, "error": 0.02}]
    assert claim(runs(40.0, faster), "e").verdict == CONFIRMED
    slower = [{"rtol": 1e-7, "nfe_forward": 20}, {"rtol": 1e-3, "nfe_forward": 80}]
    assert part(runs(40.0, slower), "e", "looser tolerance at test time").verdict == REFUTED


def test_stiff_needs_implicit():
    def stiff(explicit_nfe: int, status: str = "ok") -> pd.DataFrame:
        extra = {"projected_nfe": explicit_nfe, "t_reached": 0.01} if status != "ok" else {}
        return frame(
            row("stiff", problem="vdpol", method="rodas5p", nfe_forward=1000),
            row("stiff", problem="vdpol", method="dopri5", status=status, extra=extra,
                nfe_forward=explicit_nfe if status == "ok" else 120_000),
        )

    assert claim(stiff(50_000), "f").verdict == CONFIRMED
    assert claim(stiff(2_000), "f").verdict == REFUTED
    projected = part(stiff(5_000_000, "max_steps"), "f", "explicit cost")
    assert projected.verdict == CONFIRMED and "projected NFE" in projected.evidence


def test_markdown_lists_every_claim(tmp_path):
    rows = frame(*classifier(0.02), *memory(backsolve_grows=False))
    claims = evaluate_claims(rows)
    text = to_markdown(claims)
    for c in claims:
        assert f"| {c.key} |" in text and f"**({c.key}) {c.verdict}.**" in text
    path = write_claims(claims, tmp_path / "tables")
    assert path.read_text() == text
